// Node attestation, server side. Each attestor verifies the evidence an agent's attestor of the same
// name collected (agents/attestation/node/) and yields the agent's SPIFFE ID and node selectors. The
// core (the attestation route) only ever sees this narrow interface and the registry.

import type { Clock } from '../../clock.ts'
import type { JoinTokenRecord, Selector } from '../../store/store.ts'

export interface NodeAttestationResult {
  /** spiffe://TD/sigil/agent/<attestor>/<attestor-specific id> (a join token may fix another ID). */
  agentId: string
  selectors: Selector[]
  /** Whether the same node may attest again later (x509pop, k8s_psat: yes; join_token, aws_iid: per config). */
  canReattest: boolean
}

export interface NodeAttestationContext {
  trustDomain: string
  /** This trust domain's configuration for this attestor (validated by `configSchema`), if any. */
  config: unknown
  clock: Clock
  /** Consumes a join token atomically (throws SigilError JOIN_TOKEN_NOT_FOUND / JOIN_TOKEN_EXPIRED). */
  consumeJoinToken(token: string): Promise<JoinTokenRecord>
  /** Atomic single use of a key until expiresAt (replay protection); false when already used. */
  claimOnce(key: string, expiresAt: number): Promise<boolean>
  /** HTTP(S) fetch for JWKS and discovery documents (an injected seam for tests). */
  fetch: typeof fetch
}

/** One round of attestation: a final result, or a challenge the agent must answer (x509pop). */
export type NodeAttestationStep =
  | { done: true; result: NodeAttestationResult }
  | { done: false; challenge: unknown; state: unknown }

export interface ServerNodeAttestor {
  readonly name: 'join_token' | 'x509pop' | 'aws_iid' | 'k8s_psat' | 'gcp_iit' | 'azure_msi'
  /** JSON schema of the per-trust-domain configuration (unknown keys refused), or undefined if none. */
  readonly configSchema?: Record<string, unknown>
  /** Verifies evidence; `answer` and `state` are set on the second round of a challenge. */
  attest(
    evidence: unknown,
    ctx: NodeAttestationContext,
    round?: { state: unknown; answer: unknown },
  ): Promise<NodeAttestationStep>
}
