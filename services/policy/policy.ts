// services/policy owns the network policy language: parsing a policy file, deciding flows, recommending
// a policy from observed flows and exporting it to Kubernetes/Cilium. The language modules are pure: no
// I/O, no store, no clock, so the agent's proxy and the server can both run them and always agree. Only
// policy-service.ts (the server's versioned policies) touches the store; the agent never loads it.
//
// The policy model below is shared by all of them. A Policy is only ever built by parsePolicy (or
// recommend), so every pattern in it has already been validated; policyFromView (view.ts) rebuilds one
// that the server validated, from its JSON view.
import { SigilError } from '../errors.ts'

export type Mode = 'baseline' | 'explicit'
export type Action = 'allow' | 'deny'

/** An inclusive port range; a single port is { from: p, to: p }. */
export interface PortRange {
  from: number
  to: number
}

/** Who opens the connection. Every criterion given must match (AND); at least one is given. */
export interface Source {
  spiffeId?: string
  selector?: string
}

/** Who is called. `fqdn` and `spiffeId` never appear together; no `ports` means every port. */
export interface Destination {
  spiffeId?: string
  selector?: string
  fqdn?: string
  ports?: PortRange[]
}

export interface Rule {
  name: string
  action: Action
  from: Source
  to: Destination
}

export interface Policy {
  mode: Mode
  /** Selector keys such as `k8s:ns` or `k8s:pod-label:app.kubernetes.io/part-of`. */
  allowWithin: string[]
  rules: Rule[]
}

/**
 * A refused policy file. `line`/`column` are 1-based; `path` names the offending field; `problem` is the
 * message without its position. The API sends `{ line, column, path }` as the error's `details`.
 */
export class PolicyError extends SigilError {
  override readonly name = 'PolicyError'
  readonly line: number
  readonly column: number
  readonly path: string
  readonly problem: string

  constructor(
    where: { line: number; column: number; path: string },
    problem: string,
    options?: { cause?: unknown },
  ) {
    super('POLICY_INVALID', `line ${where.line}, ${where.path || '(document)'}: ${problem}`, {
      ...options,
      details: { line: where.line, column: where.column, path: where.path },
    })
    this.line = where.line
    this.column = where.column
    this.path = where.path
    this.problem = problem
  }
}
