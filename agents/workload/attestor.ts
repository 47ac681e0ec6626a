// Workload attestation: the narrow interface the Workload API uses (WorkloadAttestor, in
// ../workload-api/identity-source.ts), the built-in attestors next to each other (unix.ts, k8s.ts), and
// their combination. Attestation fails closed: if any attestor fails, the caller gets no selectors at
// all, because a selector that is silently missing could let it past a policy rule that denies by it.

import type { Selector, WorkloadAttestor } from '../workload-api/identity-source.ts'
import { K8sAttestor, type K8sAttestorOptions } from './k8s.ts'
import { UnixAttestor, type UnixAttestorOptions } from './unix.ts'

export type { Selector, WorkloadAttestor }

export class WorkloadAttestationError extends Error {
  override name = 'WorkloadAttestationError'
  readonly code = 'WORKLOAD_ATTESTATION_FAILED'
}

/** Runs every attestor on the caller and returns the union of their selectors. */
export function combineAttestors(attestors: Record<string, WorkloadAttestor>): WorkloadAttestor {
  const named = Object.entries(attestors)
  return {
    async attest(caller) {
      const results = await Promise.all(
        named.map(async ([name, attestor]) => {
          try {
            return await attestor.attest(caller)
          } catch (err) {
            throw new WorkloadAttestationError(
              `${name} workload attestation of process ${caller.pid} failed: ${(err as Error).message}`,
              { cause: err },
            )
          }
        }),
      )
      const seen = new Set<string>()
      const selectors: Selector[] = []
      for (const s of results.flat()) {
        const key = `${s.type}:${s.value}`
        if (seen.has(key)) continue
        seen.add(key)
        selectors.push(s)
      }
      return selectors
    },
  }
}

export interface WorkloadAttestorOptions {
  unix?: UnixAttestorOptions
  /** Set to attest Kubernetes pods through the kubelet. */
  k8s?: K8sAttestorOptions
}

/** The agent's attestor: unix always, k8s when configured. */
export function createWorkloadAttestor(opts: WorkloadAttestorOptions = {}): WorkloadAttestor {
  const attestors: Record<string, WorkloadAttestor> = { unix: new UnixAttestor(opts.unix) }
  if (opts.k8s) attestors.k8s = new K8sAttestor(opts.k8s)
  return combineAttestors(attestors)
}
