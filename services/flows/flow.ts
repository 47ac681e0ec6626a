// A flow record: what an agent's proxy reports for every connection it handled, and what the trust
// service stores per trust domain, serves at /v1/trust-domains/{td}/flows and turns into the graph.
// The agent builds these, the server validates them (never trusting an agent to name another trust
// domain's flows: the trust domain comes from the agent's SVID, not from the record).

export type FlowVerdict = 'allowed' | 'denied' | 'unidentified'

/**
 * Who saw the flow: the caller's agent (egress, incl. FQDN egress), the callee's (ingress), or the tunnel
 * broker that relayed it (relay; written by the trust service itself, never accepted from an agent).
 */
export type FlowSide = 'egress' | 'ingress' | 'relay'

export interface FlowSource {
  /** The workload's SPIFFE ID; absent when the process had no identity (unidentified). */
  spiffeId?: string
  /** The process behind the connection, as the kernel names it (only known on the caller's node). */
  pid?: number
  path?: string
  /** Code-DNA: sha256 (hex) of the executable the process ran. */
  sha256?: string
  /** The workload's selectors (unix:uid:0, k8s:ns:prod, ...), so policy dry-runs can use them. */
  selectors?: string[]
  /** SPIFFE ID of the agent that proxied the source side. */
  agent?: string
}

export interface FlowDestination {
  /** The identity the far side proved (mesh), absent for FQDN egress. */
  spiffeId?: string
  /** The name asked for (egress CONNECT), absent for mesh flows. */
  fqdn?: string
  /** The upstream or service name from the proxy configuration, when there is one. */
  service?: string
  /** The destination port; 0 when not known (a mesh flow refused before the far agent named it). */
  port: number
  /**
   * The destination workload's selectors, when the reporting agent knows them (the callee's agent, on
   * ingress), so dry runs can apply allowWithin and destination selectors as the proxy does.
   */
  selectors?: string[]
  /** SPIFFE ID of the agent that proxied the destination side. */
  agent?: string
}

export interface FlowRecord {
  /** Chosen by the caller's agent and carried to the callee's, so both sides' reports join up. */
  id: string
  side: FlowSide
  /** ms since the epoch */
  start: number
  durationMs: number
  source: FlowSource
  destination: FlowDestination
  /** Bytes sent by the source (towards the destination), and received by it. */
  bytesOut: number
  bytesIn: number
  verdict: FlowVerdict
  /** The rule that decided, when a rule did. */
  rule?: string
  /** Why: the policy's reason, or the transport's (peer refused, TLS failure, far agent unreachable). */
  reason: string
  /** The policy mode and version that decided. */
  mode: 'baseline' | 'explicit'
  policyVersion: number
}
