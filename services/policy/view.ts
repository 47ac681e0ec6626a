// The JSON form of a Policy: what the API shows (GET .../policy), what the Terraform provider sends
// (PUT .../policy `{ policy }`), and what agents receive in their sync snapshot. Every rule is spelled
// out (name, action, from, to); ports are integers, or "LOW-HIGH" strings for ranges.
//
// policyFromView turns that JSON back into the Policy that evaluate() takes. It only checks the shape:
// the server validated every pattern with parsePolicy before the policy was stored, and the agent gets
// it over its authenticated channel. It imports nothing heavy, so the agent can load it.

import { formatPort } from './patterns.ts'
import type { Action, Destination, Mode, Policy, PortRange, Rule, Source } from './policy.ts'

export type PortJson = number | string

export interface RuleJson {
  name: string
  action: Action
  from: { spiffeId?: string; selector?: string }
  to: { spiffeId?: string; selector?: string; fqdn?: string; ports?: PortJson[] }
}

export interface PolicyJson {
  mode: Mode
  allowWithin: string[]
  rules: RuleJson[]
}

/** What the agent sync snapshot carries as `policy`. */
export interface PolicySnapshot extends PolicyJson {
  version: number
}

export function toPolicyJson(policy: Policy): PolicyJson {
  return {
    mode: policy.mode,
    allowWithin: [...policy.allowWithin],
    rules: policy.rules.map((r) => {
      const from: RuleJson['from'] = {}
      if (r.from.spiffeId !== undefined) from.spiffeId = r.from.spiffeId
      if (r.from.selector !== undefined) from.selector = r.from.selector
      const to: RuleJson['to'] = {}
      if (r.to.spiffeId !== undefined) to.spiffeId = r.to.spiffeId
      if (r.to.selector !== undefined) to.selector = r.to.selector
      if (r.to.fqdn !== undefined) to.fqdn = r.to.fqdn
      if (r.to.ports !== undefined) to.ports = r.to.ports.map(formatPort)
      return { name: r.name, action: r.action, from, to }
    }),
  }
}

function fail(path: string, problem: string): never {
  throw new TypeError(`policy view ${path}: ${problem}`)
}

function object(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, 'is not an object')
  return value as Record<string, unknown>
}

function optionalString(o: Record<string, unknown>, key: string, path: string): string | undefined {
  const v = o[key]
  if (v === undefined) return undefined
  if (typeof v !== 'string' || v === '') fail(`${path}.${key}`, 'is not a non-empty string')
  return v
}

function port(value: unknown, path: string): PortRange {
  const check = (n: number) => {
    if (!Number.isInteger(n) || n < 1 || n > 65535) fail(path, `port ${JSON.stringify(value)} is invalid`)
    return n
  }
  if (typeof value === 'number') return { from: check(value), to: value }
  const m = typeof value === 'string' ? /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(value) : null
  if (!m) fail(path, `port ${JSON.stringify(value)} is neither an integer nor "LOW-HIGH"`)
  const from = check(Number(m[1]))
  const to = check(Number(m[2] ?? m[1]))
  if (from > to) fail(path, `port range ${JSON.stringify(value)} is reversed`)
  return { from, to }
}

/**
 * Rebuilds the Policy of a policy view (the JSON of GET /v1/trust-domains/{td}/policy, or the `policy`
 * of an agent's sync snapshot; extra fields such as version and text are ignored). Throws TypeError on
 * a malformed shape.
 */
export function policyFromView(view: Pick<PolicyJson, 'mode' | 'allowWithin' | 'rules'>): Policy {
  const v = object(view, '(root)')
  if (v.mode !== 'baseline' && v.mode !== 'explicit') fail('mode', 'is neither baseline nor explicit')
  if (!Array.isArray(v.allowWithin) || !v.allowWithin.every((k) => typeof k === 'string' && k !== '')) {
    fail('allowWithin', 'is not a list of selector keys')
  }
  if (!Array.isArray(v.rules)) fail('rules', 'is not a list')
  const rules = v.rules.map((raw, i): Rule => {
    const path = `rules[${i}]`
    const r = object(raw, path)
    if (typeof r.name !== 'string' || r.name === '') fail(`${path}.name`, 'is not a non-empty string')
    const action = r.action ?? 'allow'
    if (action !== 'allow' && action !== 'deny') fail(`${path}.action`, 'is neither allow nor deny')
    const f = object(r.from, `${path}.from`)
    const t = object(r.to, `${path}.to`)
    const from: Source = {}
    const fromId = optionalString(f, 'spiffeId', `${path}.from`)
    const fromSelector = optionalString(f, 'selector', `${path}.from`)
    if (fromId !== undefined) from.spiffeId = fromId
    if (fromSelector !== undefined) from.selector = fromSelector
    if (fromId === undefined && fromSelector === undefined) fail(`${path}.from`, 'names nothing')
    const to: Destination = {}
    const toId = optionalString(t, 'spiffeId', `${path}.to`)
    const toSelector = optionalString(t, 'selector', `${path}.to`)
    const fqdn = optionalString(t, 'fqdn', `${path}.to`)
    if (toId !== undefined) to.spiffeId = toId
    if (toSelector !== undefined) to.selector = toSelector
    if (fqdn !== undefined) to.fqdn = fqdn
    if (toId === undefined && toSelector === undefined && fqdn === undefined)
      fail(`${path}.to`, 'names nothing')
    if (t.ports !== undefined) {
      if (!Array.isArray(t.ports) || t.ports.length === 0) fail(`${path}.to.ports`, 'is not a non-empty list')
      to.ports = t.ports.map((p, j) => port(p, `${path}.to.ports[${j}]`))
    }
    return { name: r.name, action, from, to }
  })
  return { mode: v.mode, allowWithin: [...(v.allowWithin as string[])], rules }
}
