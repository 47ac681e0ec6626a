// The policy the proxy enforces: the trust domain's current policy as the server pushed it, decided by
// the same pure evaluator the server uses for dry runs, so both always agree. Until the first push the
// agent runs the default: baseline, no rules (observe, break nothing).

import { type Decision, evaluate, type Flow } from '../../services/policy/evaluate.ts'
import type { Policy } from '../../services/policy/policy.ts'

export interface PolicyDecision extends Decision {
  mode: Policy['mode']
  policyVersion: number
}

export const DEFAULT_POLICY: Policy = { mode: 'baseline', allowWithin: [], rules: [] }

export class PolicyState {
  #policy: Policy = DEFAULT_POLICY
  #version = 0

  get version(): number {
    return this.#version
  }

  get mode(): Policy['mode'] {
    return this.#policy.mode
  }

  set(policy: Policy, version: number): boolean {
    if (version === this.#version && version !== 0) return false
    this.#policy = policy
    this.#version = version
    return true
  }

  decide(flow: Flow): PolicyDecision {
    return { ...evaluate(this.#policy, flow), mode: this.#policy.mode, policyVersion: this.#version }
  }
}
