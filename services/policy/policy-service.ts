// A trust domain's network policy as a versioned record: set from a policy file or the API's JSON form
// (both checked by parsePolicy, the one validator), switched between modes, reset, listed, tried out
// against observed flows (dry run) and recommended from them.
//
// Version 0 is the policy of a trust domain nobody set one for: no rules, in the mode of the trust
// domain's settings (baseline unless created otherwise). Every change writes a new version through the
// store's compare-and-set, so two concurrent writers never both win, and publishes a change that agents'
// sync streams carry at once. A refused policy changes nothing: the old one keeps running.

import { createHash } from 'node:crypto'
import { Document, isMap, isScalar, parseDocument } from 'yaml'
import type { Clock } from '../clock.ts'
import { quote, SigilError } from '../errors.ts'
import type { FederationService } from '../federation/federation-service.ts'
import type { FlowRecord } from '../flows/flow.ts'
import type { FlowService } from '../flows/flow-service.ts'
import type { Store, TrustDomainRecord } from '../store/store.ts'
import { trustDomainGone } from '../tenancy/trust-domains.ts'
import { dryRun, type Flow } from './evaluate.ts'
import { toCiliumNetworkPolicy, toKubernetesNetworkPolicy, toYaml } from './export.ts'
import { parsePolicy } from './parse.ts'
import { type Mode, type Policy, PolicyError } from './policy.ts'
import { recommend } from './recommend.ts'
import { type PolicyJson, type PortJson, toPolicyJson } from './view.ts'

/** The API's JSON form of a policy; every field optional (mode: the current one; the rest: empty). */
export interface PolicyInputJson {
  mode?: Mode
  allowWithin?: string[]
  rules?: Array<{
    name: string
    action?: 'allow' | 'deny'
    from: { spiffeId?: string; selector?: string }
    to: { spiffeId?: string; selector?: string; fqdn?: string; ports?: PortJson[] }
  }>
}

export type PolicyInput = { text: string } | { policy: PolicyInputJson }

export interface CurrentPolicy {
  trustDomain: string
  version: number
  mode: Mode
  policy: Policy
  text: string
  updatedAt: number | null
  updatedBy: string | null
}

export type RecommendationFormat = 'yaml' | 'json' | 'k8s' | 'cilium'

export interface DryRunGroup {
  source: { spiffeId?: string; path?: string; agent?: string }
  destination: { spiffeId?: string; fqdn?: string }
  port: number
  reason: string
  count: number
  /** ms since the epoch of the newest flow in the group */
  lastSeen: number
}

export interface DryRunResult {
  wouldDeny: DryRunGroup[]
  wouldAllow: number
  flowsExamined: number
}

/** How often a write that lost a race (without an expected version) is tried again. */
const WRITE_ATTEMPTS = 5
const PARSE_CACHE_SIZE = 64

/**
 * The trust domains a stored policy text names. A stored policy was checked against the federations of
 * its time; read back, it must still parse after a federation is deleted (its rules naming that trust
 * domain then match no peer, because no bundle of it is held any more).
 */
function namedTrustDomains(text: string): string[] {
  return [...new Set([...text.matchAll(/spiffe:\/\/([^/\s"'*]+)/g)].map((m) => m[1]!))]
}

function conflict(td: string, expected: number, current: number): SigilError {
  return new SigilError(
    'POLICY_VERSION_CONFLICT',
    `the policy of ${td} is at version ${current}, not ${expected}; someone changed it meanwhile: read it again (\`sigil policy show --trust-domain ${td}\`), merge, and retry with --expected-version ${current}`,
  )
}

/** A numeric string port ("5432", as Terraform lists hold them) becomes a number; the rest stays. */
function portValue(p: PortJson): PortJson {
  return typeof p === 'string' && /^\d{1,5}$/.test(p) ? Number(p) : p
}

/** YAML for the JSON form, keys in the file's order, so parsePolicy checks it like any file. */
export function policyJsonToYaml(input: PolicyInputJson, mode: Mode): string {
  const end = (e: Record<string, unknown>) => {
    const out: Record<string, unknown> = {}
    for (const key of ['spiffeId', 'selector', 'fqdn'] as const) if (e[key] !== undefined) out[key] = e[key]
    if (Array.isArray(e.ports)) out.ports = (e.ports as PortJson[]).map(portValue)
    return out
  }
  const doc = new Document({
    mode: input.mode ?? mode,
    allowWithin: input.allowWithin ?? [],
    rules: (input.rules ?? []).map((r) => ({
      name: r.name,
      ...(r.action === undefined ? {} : { action: r.action }),
      from: end(r.from),
      to: end(r.to),
    })),
  })
  return doc.toString()
}

/** The text with its top-level `mode:` set, comments and layout kept (inserted first when absent). */
export function withMode(text: string, mode: Mode): string {
  if (text.trim() === '') return `mode: ${mode}\n`
  // Typed as a plain Document: a parsed one's nodes cannot take new, unparsed values.
  const doc = parseDocument(text) as unknown as Document
  if (!isMap(doc.contents)) return `mode: ${mode}\n`
  const node = doc.contents.get('mode', true)
  if (isScalar(node)) node.value = mode
  else doc.contents.items.unshift(doc.createPair('mode', mode))
  return doc.toString({ flowCollectionPadding: false })
}

function flowForEvaluation(f: FlowRecord): Flow {
  const destination: Flow['destination'] = {}
  if (f.destination.spiffeId !== undefined) destination.spiffeId = f.destination.spiffeId
  if (f.destination.fqdn !== undefined) destination.fqdn = f.destination.fqdn
  if (f.destination.selectors !== undefined) destination.selectors = f.destination.selectors
  const source: Flow['source'] = { selectors: f.source.selectors ?? [] }
  if (f.source.spiffeId !== undefined) source.spiffeId = f.source.spiffeId
  return { source, destination, port: f.destination.port }
}

export class PolicyService {
  readonly #parsed = new Map<string, Policy>()

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly flows: FlowService,
    private readonly federation?: FederationService,
  ) {}

  /** The foreign trust domains whose SPIFFE IDs the policy of `td` may name: those it federates with. */
  async federatesWith(td: TrustDomainRecord): Promise<string[]> {
    return this.federation ? this.federation.federatedTrustDomains(td.name) : []
  }

  /** Parses a stored text again (it was valid when stored), through a small cache. */
  #parseStored(td: string, text: string): Policy {
    const key = `${td}\n${createHash('sha256').update(text).digest('hex')}`
    let policy = this.#parsed.get(key)
    if (!policy) {
      policy = parsePolicy(text, { trustDomain: td, federatesWith: namedTrustDomains(text) })
      if (this.#parsed.size >= PARSE_CACHE_SIZE) this.#parsed.delete(this.#parsed.keys().next().value!)
      this.#parsed.set(key, policy)
    }
    return policy
  }

  /** The mode that runs: the current version's, or the trust domain setting's before any version. */
  async mode(td: TrustDomainRecord): Promise<Mode> {
    return (await this.store.getPolicy(td.name))?.mode ?? td.settings.policyMode
  }

  async get(td: TrustDomainRecord): Promise<CurrentPolicy> {
    const record = await this.store.getPolicy(td.name)
    if (!record) {
      const mode = td.settings.policyMode
      return {
        trustDomain: td.name,
        version: 0,
        mode,
        policy: { mode, allowWithin: [], rules: [] },
        text: '',
        updatedAt: null,
        updatedBy: null,
      }
    }
    return {
      trustDomain: td.name,
      version: record.version,
      mode: record.mode,
      policy: this.#parseStored(td.name, record.text),
      text: record.text,
      updatedAt: record.updatedAt,
      updatedBy: record.updatedBy,
    }
  }

  async history(td: TrustDomainRecord, limit: number): Promise<CurrentPolicy[]> {
    const records = await this.store.listPolicyVersions(td.name, limit)
    return records.map((r) => ({
      trustDomain: td.name,
      version: r.version,
      mode: r.mode,
      policy: this.#parseStored(td.name, r.text),
      text: r.text,
      updatedAt: r.updatedAt,
      updatedBy: r.updatedBy,
    }))
  }

  /**
   * Checks a policy (file text or JSON form) as it would be stored: the text, and what it parses to.
   * The JSON form without `mode` keeps `currentMode`.
   */
  validate(
    td: TrustDomainRecord,
    input: PolicyInput,
    currentMode: Mode,
    federatesWith: Iterable<string> = [],
  ): { text: string; policy: Policy } {
    const opts = { trustDomain: td.name, federatesWith }
    if ('text' in input) return { text: input.text, policy: parsePolicy(input.text, opts) }
    const text = policyJsonToYaml(input.policy, currentMode)
    try {
      return { text, policy: parsePolicy(text, opts) }
    } catch (err) {
      // The lines are those of the generated YAML, which the caller never saw: name the field only.
      if (err instanceof PolicyError) {
        throw new SigilError('POLICY_INVALID', `policy.${err.path || '(document)'}: ${err.problem}`, {
          cause: err,
          details: { path: err.path },
        })
      }
      throw err
    }
  }

  /**
   * Stores a new version made by `next` from the current one. With `expectedVersion`, the current
   * version must be that one (else POLICY_VERSION_CONFLICT); without, a lost race is retried.
   */
  async #write(
    td: TrustDomainRecord,
    actor: string,
    expectedVersion: number | undefined,
    next: (current: CurrentPolicy) => { text: string; policy: Policy } | undefined,
  ): Promise<CurrentPolicy> {
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const current = await this.get(td)
      if (expectedVersion !== undefined && current.version !== expectedVersion) {
        throw conflict(td.name, expectedVersion, current.version)
      }
      const made = next(current)
      if (!made) return current
      const record = {
        trustDomain: td.name,
        version: current.version + 1,
        text: made.text,
        mode: made.policy.mode,
        updatedAt: this.clock.now(),
        updatedBy: actor,
      }
      let stored: boolean
      try {
        stored = await this.store.putPolicy(record, current.version)
      } catch (err) {
        throw trustDomainGone(err)
      }
      if (stored) return { ...record, policy: made.policy }
      if (expectedVersion !== undefined) {
        const now = (await this.store.getPolicy(td.name))?.version ?? 0
        throw conflict(td.name, expectedVersion, now)
      }
    }
    throw new SigilError(
      'POLICY_VERSION_CONFLICT',
      `the policy of ${td.name} kept changing while this change was being written; try again`,
    )
  }

  async set(
    td: TrustDomainRecord,
    input: PolicyInput,
    expectedVersion: number | undefined,
    actor: string,
  ): Promise<CurrentPolicy> {
    const federated = await this.federatesWith(td)
    return this.#write(td, actor, expectedVersion, (current) =>
      this.validate(td, input, current.mode, federated),
    )
  }

  /** A new version with only the file's `mode:` changed (comments kept); none when it already is. */
  setMode(td: TrustDomainRecord, mode: Mode, actor: string): Promise<CurrentPolicy> {
    if (mode !== 'baseline' && mode !== 'explicit') {
      throw new SigilError('POLICY_INVALID', `mode ${quote(mode)} is neither baseline nor explicit`)
    }
    return this.#write(td, actor, undefined, (current) => {
      if (current.mode === mode) return undefined
      const text = withMode(current.text, mode)
      return { text, policy: this.#parseStored(td.name, text) }
    })
  }

  /** A new version with the default policy (baseline, no rules): history is kept. */
  reset(td: TrustDomainRecord, actor: string): Promise<CurrentPolicy> {
    const text = 'mode: baseline\nallowWithin: []\nrules: []\n'
    return this.#write(td, actor, undefined, () => ({ text, policy: this.#parseStored(td.name, text) }))
  }

  /**
   * What the given policy (or the current one) would refuse in explicit mode, over the flows of the last
   * `sinceMs`, grouped by source, destination and port.
   */
  async dryRun(
    td: TrustDomainRecord,
    input: PolicyInput | undefined,
    sinceMs: number,
  ): Promise<DryRunResult> {
    const current = await this.get(td)
    const policy = input
      ? this.validate(td, input, current.mode, await this.federatesWith(td)).policy
      : current.policy
    const flows = await this.flows.window(td, sinceMs)
    const inputs = flows.map((f) => [flowForEvaluation(f), f] as const)
    const recordOf = new Map<Flow, FlowRecord>(inputs)
    const result = dryRun(
      policy,
      inputs.map(([flow]) => flow),
    )
    const refused = new Map<string, DryRunGroup>()
    for (const { flow, reason } of result.wouldDeny) {
      const f = recordOf.get(flow)!
      const source: DryRunGroup['source'] = {}
      if (f.source.spiffeId !== undefined) source.spiffeId = f.source.spiffeId
      else {
        if (f.source.path !== undefined) source.path = f.source.path
        if (f.source.agent !== undefined) source.agent = f.source.agent
      }
      const destination: DryRunGroup['destination'] = {}
      if (f.destination.spiffeId !== undefined) destination.spiffeId = f.destination.spiffeId
      else if (f.destination.fqdn !== undefined) destination.fqdn = f.destination.fqdn
      const key = JSON.stringify([source, destination, f.destination.port])
      const group = refused.get(key)
      if (group) {
        group.count++
        group.lastSeen = Math.max(group.lastSeen, f.start)
      } else {
        refused.set(key, {
          source,
          destination,
          port: f.destination.port,
          reason,
          count: 1,
          lastSeen: f.start,
        })
      }
    }
    return {
      wouldDeny: [...refused.values()].sort((a, b) => b.count - a.count || b.lastSeen - a.lastSeen),
      wouldAllow: result.wouldAllow,
      flowsExamined: flows.length,
    }
  }

  /**
   * The smallest allow-only policy admitting the identified egress flows of the last `sinceMs` (flows a
   * deny decided are left out), rendered in `format`. Kubernetes and Cilium manifests take namespaces
   * and pod labels from the registration entries' and the observed flows' k8s selectors.
   */
  async recommend(
    td: TrustDomainRecord,
    sinceMs: number,
    format: RecommendationFormat,
  ): Promise<{ format: RecommendationFormat; text: string; policy: PolicyJson }> {
    const flows = (await this.flows.window(td, sinceMs)).filter(
      (f) => f.side === 'egress' && f.verdict !== 'denied',
    )
    const policy = recommend(flows.map(flowForEvaluation))
    const json = toPolicyJson(policy)
    if (format === 'yaml') return { format, text: toYaml(policy), policy: json }
    if (format === 'json') return { format, text: `${JSON.stringify(json, null, 2)}\n`, policy: json }
    const view = await this.#clusterView(td, flows)
    const text =
      format === 'k8s' ? toKubernetesNetworkPolicy(policy, view) : toCiliumNetworkPolicy(policy, view)
    return { format, text, policy: json }
  }

  async #clusterView(td: TrustDomainRecord, flows: FlowRecord[]) {
    const known = new Map<string, { namespace?: string; labels: Record<string, string> }>()
    const learn = (spiffeId: string | undefined, selectors: readonly string[] | undefined) => {
      if (!spiffeId || !selectors) return
      const w = known.get(spiffeId) ?? { labels: {} }
      for (const s of selectors) {
        if (s.startsWith('k8s:ns:')) w.namespace ??= s.slice('k8s:ns:'.length)
        else if (s.startsWith('k8s:pod-label:')) {
          const kv = s.slice('k8s:pod-label:'.length)
          const at = kv.indexOf(':')
          if (at > 0) w.labels[kv.slice(0, at)] ??= kv.slice(at + 1)
        }
      }
      known.set(spiffeId, w)
    }
    // Registration entries say what a workload must have; observed selectors fill in the rest.
    for (const e of await this.store.listEntries(td.name)) {
      learn(
        e.spiffeId,
        e.selectors.map((s) => `${s.type}:${s.value}`),
      )
    }
    for (const f of flows) {
      learn(f.source.spiffeId, f.source.selectors)
      learn(f.destination.spiffeId, f.destination.selectors)
    }
    return {
      namespaceOf: (id: string) => known.get(id)?.namespace,
      // No labels would select every pod of the namespace: such a workload is left out instead.
      labelsOf: (id: string) => {
        const labels = known.get(id)?.labels
        return labels && Object.keys(labels).length > 0 ? labels : undefined
      },
    }
  }
}
