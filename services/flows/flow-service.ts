// Flow reports: what agents' proxies tell the trust service about each connection they handled. Stored
// per trust domain with a retention by age and count; listed; joined into the flow graph.
//
// An agent reports only into its own trust domain (the one of its SVID), and only for its own side:
// the `agent` of the end it proxied is set from its authenticated identity, never from the body, and
// the SPIFFE ID of that end must be of its trust domain. Nothing of a batch is stored unless all of it
// is valid.

import type { AgentPrincipal } from '../agents/agent-service.ts'
import { parseSpiffeId, SpiffeIdError } from '../authority/spiffe-id.ts'
import type { Clock } from '../clock.ts'
import { SigilError } from '../errors.ts'
import { fqdnProblem, normalizeFqdn } from '../policy/patterns.ts'
import { parseSelector } from '../registry/selectors.ts'
import type { Store, TrustDomainRecord } from '../store/store.ts'
import { trustDomainGone } from '../tenancy/trust-domains.ts'
import type { FlowDestination, FlowRecord, FlowSide, FlowSource, FlowVerdict } from './flow.ts'
import { buildGraph, type FlowGraph, joinFlows } from './graph.ts'

export interface FlowServiceOptions {
  /** Flows older than this are dropped, ms. */
  retentionMs: number
  maxPerTrustDomain: number
}

export interface FlowFilter {
  verdict?: FlowVerdict
  /** Flows whose source or destination has this SPIFFE ID. */
  spiffeId?: string
}

export interface FlowListQuery extends FlowFilter {
  /** ms since the epoch */
  since?: number
  until?: number
  limit: number
  side?: FlowSide
}

/** A flow may start at most this far in the agent's future (clock skew), ms. */
const MAX_CLOCK_SKEW_MS = 10 * 60_000
export const FLOW_ID_PATTERN = '^[A-Za-z0-9_.:-]{1,128}$'
const FLOW_ID = new RegExp(FLOW_ID_PATTERN)

function invalid(index: number, path: string, problem: string, cause?: unknown): SigilError {
  const at = `flows[${index}]${path ? `.${path}` : ''}`
  return new SigilError('FLOW_INVALID', `${at}: ${problem}`, {
    ...(cause === undefined ? {} : { cause }),
    details: { index, path },
  })
}

export class FlowService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly opts: FlowServiceOptions,
  ) {}

  /** Validates and stores an agent's batch; returns how many records were stored. */
  async ingest(
    td: TrustDomainRecord,
    agent: AgentPrincipal,
    records: readonly FlowRecord[],
  ): Promise<number> {
    if (agent.trustDomain !== td.name) throw new TypeError('the agent belongs to another trust domain')
    const now = this.clock.now()
    const clean = records.map((r, i) => this.#validate(td.name, agent.spiffeId, r, i, now))
    try {
      await this.store.appendFlows(
        td.name,
        clean,
        { maxAgeMs: this.opts.retentionMs, maxCount: this.opts.maxPerTrustDomain },
        now,
      )
    } catch (err) {
      throw trustDomainGone(err)
    }
    return clean.length
  }

  /** Stores records the trust service made itself (the broker's relay records): no agent to check. */
  async record(trustDomain: string, records: FlowRecord[]): Promise<void> {
    await this.store.appendFlows(
      trustDomain,
      records,
      { maxAgeMs: this.opts.retentionMs, maxCount: this.opts.maxPerTrustDomain },
      this.clock.now(),
    )
  }

  list(td: TrustDomainRecord, query: FlowListQuery): Promise<FlowRecord[]> {
    return this.store.listFlows(td.name, query)
  }

  /** The flows of the last `sinceMs`, one record per flow (both sides joined), newest first. */
  async window(td: TrustDomainRecord, sinceMs: number, filter: FlowFilter = {}): Promise<FlowRecord[]> {
    const records = await this.store.listFlows(td.name, {
      since: this.clock.now() - sinceMs,
      limit: this.opts.maxPerTrustDomain,
    })
    return joinFlows(records).filter(
      (f) =>
        (filter.verdict === undefined || f.verdict === filter.verdict) &&
        (filter.spiffeId === undefined ||
          f.source.spiffeId === filter.spiffeId ||
          f.destination.spiffeId === filter.spiffeId),
    )
  }

  async graph(td: TrustDomainRecord, sinceMs: number, filter: FlowFilter = {}): Promise<FlowGraph> {
    return buildGraph(await this.window(td, sinceMs, filter))
  }

  #validate(td: string, agent: string, r: FlowRecord, i: number, now: number): FlowRecord {
    if (!FLOW_ID.test(r.id)) {
      throw invalid(i, 'id', 'must be 1-128 letters, digits, "_", ".", ":" or "-"')
    }
    if (r.start > now + MAX_CLOCK_SKEW_MS) {
      throw invalid(
        i,
        'start',
        `is ${Math.round((r.start - now) / 1000)}s in the future; check the agent's clock`,
      )
    }
    const spiffeId = (value: string | undefined, path: string, local: boolean): string | undefined => {
      if (value === undefined) return undefined
      let domain: string
      try {
        domain = parseSpiffeId(value, { requireWorkloadPath: true }).trustDomain
      } catch (err) {
        if (err instanceof SpiffeIdError) throw invalid(i, path, err.message, err)
        throw err
      }
      if (local && domain !== td) {
        throw invalid(
          i,
          path,
          `${JSON.stringify(value)} is not in trust domain ${td}; an agent reports only the workloads of its own trust domain`,
        )
      }
      return value
    }
    const selectors = (list: string[] | undefined, path: string): string[] | undefined => {
      if (list === undefined) return undefined
      return list.map((s, j) => {
        try {
          const parsed = parseSelector(s)
          return `${parsed.type}:${parsed.value}`
        } catch (err) {
          if (err instanceof SigilError) throw invalid(i, `${path}[${j}]`, err.message, err)
          throw err
        }
      })
    }
    const egress = r.side === 'egress'
    const src = r.source
    const source: FlowSource = {}
    const sourceId = spiffeId(src.spiffeId, 'source.spiffeId', egress)
    if (sourceId !== undefined) source.spiffeId = sourceId
    if (src.pid !== undefined) source.pid = src.pid
    if (src.path !== undefined) {
      if (!src.path.startsWith('/') || /[\u0000-\u001f\u007f]/.test(src.path)) {
        throw invalid(i, 'source.path', 'must be an absolute path without control characters')
      }
      source.path = src.path
    }
    if (src.sha256 !== undefined) source.sha256 = src.sha256
    const sourceSelectors = selectors(src.selectors, 'source.selectors')
    if (sourceSelectors !== undefined) source.selectors = sourceSelectors
    if (egress) source.agent = agent

    const dst = r.destination
    const destination: FlowDestination = { port: dst.port }
    const destinationId = spiffeId(dst.spiffeId, 'destination.spiffeId', !egress)
    if (destinationId !== undefined) destination.spiffeId = destinationId
    if (dst.fqdn !== undefined) {
      const name = normalizeFqdn(dst.fqdn)
      const problem = name.includes('*') ? 'a name asked for cannot be a wildcard' : fqdnProblem(name)
      if (problem) throw invalid(i, 'destination.fqdn', problem)
      destination.fqdn = name
    }
    if (dst.service !== undefined) destination.service = dst.service
    const destinationSelectors = selectors(dst.selectors, 'destination.selectors')
    if (destinationSelectors !== undefined) destination.selectors = destinationSelectors
    if (!egress) destination.agent = agent

    const out: FlowRecord = {
      id: r.id,
      side: r.side,
      start: r.start,
      durationMs: r.durationMs,
      source,
      destination,
      bytesOut: r.bytesOut,
      bytesIn: r.bytesIn,
      verdict: r.verdict,
      reason: r.reason,
      mode: r.mode,
      policyVersion: r.policyVersion,
    }
    if (r.rule !== undefined) out.rule = r.rule
    return out
  }
}

/** The API's view of a flow record: times as RFC 3339. */
export function flowView(r: FlowRecord) {
  return { ...r, start: new Date(r.start).toISOString() }
}
