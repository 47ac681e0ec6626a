// The k8s workload attestor: the pod and container a process runs in (from its cgroup), then what the
// kubelet says about them: namespace, service account, pod name, UID and labels, container name and
// image. A container that started a moment ago may not be in the kubelet's list yet, so a miss polls the
// kubelet a few times before attestation fails.

import { setTimeout as delay } from 'node:timers/promises'
import type { Clock } from '../../services/clock.ts'
import type { Selector, WorkloadAttestor } from '../workload-api/identity-source.ts'
import { type PodContainer, podContainerFromCgroup } from './cgroup.ts'
import type { ContainerStatus, KubeletClient, Pod, PodList } from './kubelet.ts'
import { type ProcessTable, ProcFs } from './process-table.ts'

export interface K8sAttestorOptions {
  kubelet: KubeletClient
  processes?: ProcessTable
  clock?: Clock
  sleep?: (ms: number) => Promise<void>
  /** A pod list younger than this is reused without asking the kubelet. Default 1 s. */
  podListMaxAgeMs?: number
  /** Kubelet queries for a container it does not list yet, `pollIntervalMs` apart. Default 5, 500 ms. */
  pollAttempts?: number
  pollIntervalMs?: number
}

interface Cached {
  at: number
  list: PodList
}

export class K8sAttestor implements WorkloadAttestor {
  readonly #kubelet: KubeletClient
  readonly #processes: ProcessTable
  readonly #clock: Clock
  readonly #sleep: (ms: number) => Promise<void>
  readonly #maxAge: number
  readonly #attempts: number
  readonly #interval: number
  #cached: Cached | undefined
  #inflight: Promise<Cached> | undefined

  constructor(opts: K8sAttestorOptions) {
    this.#kubelet = opts.kubelet
    this.#processes = opts.processes ?? new ProcFs()
    this.#clock = opts.clock ?? { now: () => Date.now() }
    this.#sleep = opts.sleep ?? ((ms) => delay(ms))
    this.#maxAge = opts.podListMaxAgeMs ?? 1000
    this.#attempts = Math.max(1, opts.pollAttempts ?? 5)
    this.#interval = opts.pollIntervalMs ?? 500
  }

  async attest(caller: { pid: number }): Promise<Selector[]> {
    const where = podContainerFromCgroup(this.#processes.cgroup(caller.pid))
    if (!where) return []
    for (let attempt = 0; attempt < this.#attempts; attempt++) {
      const { list } = await this.#podList(attempt > 0)
      const found = findContainer(list, where)
      if (found) return selectorsFor(found.pod, found.status)
      if (attempt + 1 < this.#attempts) await this.#sleep(this.#interval)
    }
    throw new Error(
      `container ${where.containerId} of pod ${where.podUid} is not in the kubelet's pod list ` +
        `(asked ${this.#attempts} times); is the agent on the pod's node?`,
    )
  }

  /** The cached pod list while it is fresh; a new one (or the one being fetched) when `refresh`. */
  async #podList(refresh: boolean): Promise<Cached> {
    const cached = this.#cached
    if (!refresh && cached && this.#clock.now() - cached.at <= this.#maxAge) return cached
    // Concurrent attestations share one kubelet request.
    if (!this.#inflight) {
      const at = this.#clock.now()
      this.#inflight = this.#kubelet
        .podList()
        .then((list) => {
          this.#cached = { at, list }
          return this.#cached
        })
        .finally(() => {
          this.#inflight = undefined
        })
    }
    return this.#inflight
  }
}

function containerId(status: ContainerStatus): string | undefined {
  const id = status.containerID
  if (!id) return undefined
  const sep = id.indexOf('://')
  return sep < 0 ? id : id.slice(sep + 3)
}

function findContainer(
  list: PodList,
  where: PodContainer,
): { pod: Pod; status: ContainerStatus } | undefined {
  const pod = list.items.find((p) => p.metadata?.uid === where.podUid)
  if (!pod) return undefined
  const statuses = [
    ...(pod.status?.containerStatuses ?? []),
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.ephemeralContainerStatuses ?? []),
  ]
  const status = statuses.find((s) => containerId(s) === where.containerId)
  return status ? { pod, status } : undefined
}

function selectorsFor(pod: Pod, status: ContainerStatus): Selector[] {
  const values = new Set<string>()
  const { metadata, spec } = pod
  values.add(`ns:${metadata.namespace}`)
  if (spec?.serviceAccountName) values.add(`sa:${spec.serviceAccountName}`)
  values.add(`pod-name:${metadata.name}`)
  values.add(`pod-uid:${metadata.uid}`)
  for (const [key, value] of Object.entries(metadata.labels ?? {})) values.add(`pod-label:${key}:${value}`)
  values.add(`container-name:${status.name}`)
  // The image as written in the spec, as the runtime resolved it, and its digest (the strongest).
  const specContainer = [
    ...(spec?.containers ?? []),
    ...(spec?.initContainers ?? []),
    ...(spec?.ephemeralContainers ?? []),
  ].find((c) => c.name === status.name)
  for (const image of [specContainer?.image, status.image, status.imageID]) {
    if (image) values.add(`container-image:${image}`)
  }
  return [...values].map((value) => ({ type: 'k8s', value }))
}
