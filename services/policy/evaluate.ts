// Decides one flow against a policy. Pure and synchronous: the proxy asks on every new connection.
//
// Semantics, in order:
//   1. Deny rules win over everything, in both modes and for unidentified sources too (a deny rule
//      on a selector such as unix:path:/bin/sh matches a process whether or not it holds an SVID).
//   2. A source without a SPIFFE ID is unidentified. Baseline lets it through with verdict
//      'unidentified' so it is reported; explicit denies it: only proven identities get in, and allow
//      rules never match an unidentified source, even by selector.
//   3. An identified flow is allowed by the first allow rule (file order) whose `from` and `to` both
//      match, or by allowWithin when both ends carry the same value of one listed selector key
//      (e.g. both k8s:ns:prod). allowWithin needs the destination to be identified too.
//   4. Anything else: baseline allows it with reason 'no rule (baseline)' (observe, don't break);
//      explicit denies it.
// One rule covers both ends: the caller's agent checks it as egress and the callee's as ingress,
// with the same answer, because both evaluate the same flow.
// Matching within one end is AND over the criteria given; a selector criterion is an exact match on
// one of the end's selectors (e.g. unix:sha256:HEX, the code-DNA).

import { matchFqdn, matchPorts, matchSpiffeId } from './patterns.ts'
import type { Destination, Policy, Rule, Source } from './policy.ts'

export interface Flow {
  source: { spiffeId?: string; selectors: string[] }
  destination: { spiffeId?: string; fqdn?: string; selectors?: string[] }
  port: number
}

export type Verdict = 'allowed' | 'denied' | 'unidentified'

export interface Decision {
  verdict: Verdict
  rule?: string
  reason: string
}

export const NO_RULE_BASELINE = 'no rule (baseline)'

function matchSource(s: Source, flow: Flow): boolean {
  if (
    s.spiffeId !== undefined &&
    (!flow.source.spiffeId || !matchSpiffeId(s.spiffeId, flow.source.spiffeId))
  ) {
    return false
  }
  if (s.selector !== undefined && !flow.source.selectors.includes(s.selector)) return false
  return true
}

function matchDestination(d: Destination, flow: Flow): boolean {
  const dst = flow.destination
  if (d.spiffeId !== undefined && (!dst.spiffeId || !matchSpiffeId(d.spiffeId, dst.spiffeId))) return false
  if (d.fqdn !== undefined && (!dst.fqdn || !matchFqdn(d.fqdn, dst.fqdn))) return false
  if (d.selector !== undefined && !(dst.selectors ?? []).includes(d.selector)) return false
  return matchPorts(d.ports, flow.port)
}

export function ruleMatches(rule: Rule, flow: Flow): boolean {
  return matchSource(rule.from, flow) && matchDestination(rule.to, flow)
}

/** The shared `key:value` for the first allowWithin key both ends carry, or undefined. */
function sharedValue(keys: string[], a: string[], b: string[]): string | undefined {
  for (const key of keys) {
    const prefix = `${key}:`
    const values = new Set(a.filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length)))
    const hit = b.find((s) => s.startsWith(prefix) && values.has(s.slice(prefix.length)))
    if (hit) return hit
  }
  return undefined
}

function describe(flow: Flow): string {
  const src = flow.source.spiffeId ?? 'an unidentified source'
  const dst = flow.destination.spiffeId ?? flow.destination.fqdn ?? 'an unidentified destination'
  return `${src} to ${dst} port ${flow.port}`
}

export function evaluate(policy: Policy, flow: Flow): Decision {
  for (const rule of policy.rules) {
    if (rule.action === 'deny' && ruleMatches(rule, flow)) {
      return {
        verdict: 'denied',
        rule: rule.name,
        reason: `deny rule ${rule.name} matches ${describe(flow)}`,
      }
    }
  }
  if (!flow.source.spiffeId) {
    if (policy.mode === 'baseline') {
      return { verdict: 'unidentified', reason: 'source has no SPIFFE ID; baseline lets it through' }
    }
    return {
      verdict: 'denied',
      reason: `source has no SPIFFE ID; explicit mode admits only identified workloads (${describe(flow)})`,
    }
  }
  for (const rule of policy.rules) {
    if (rule.action === 'allow' && ruleMatches(rule, flow)) {
      return { verdict: 'allowed', rule: rule.name, reason: `allow rule ${rule.name}` }
    }
  }
  if (flow.destination.spiffeId && policy.allowWithin.length > 0) {
    const shared = sharedValue(policy.allowWithin, flow.source.selectors, flow.destination.selectors ?? [])
    if (shared) return { verdict: 'allowed', reason: `allowWithin: both ends have ${shared}` }
  }
  if (policy.mode === 'baseline') return { verdict: 'allowed', reason: NO_RULE_BASELINE }
  return { verdict: 'denied', reason: `no rule allows ${describe(flow)} (explicit)` }
}

export interface DryRun {
  wouldDeny: Array<{ flow: Flow; reason: string }>
  wouldAllow: number
}

/** What switching this policy to explicit mode would break, over observed flows. */
export function dryRun(policy: Policy, flows: Flow[]): DryRun {
  const explicit: Policy = { ...policy, mode: 'explicit' }
  const wouldDeny: DryRun['wouldDeny'] = []
  let wouldAllow = 0
  for (const flow of flows) {
    const d = evaluate(explicit, flow)
    if (d.verdict === 'allowed') wouldAllow++
    else wouldDeny.push({ flow, reason: d.reason })
  }
  return { wouldDeny, wouldAllow }
}
