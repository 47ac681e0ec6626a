import type { FastifyInstance } from 'fastify'
import { SigilError } from '../../errors.ts'
import type { FlowSide, FlowVerdict } from '../../flows/flow.ts'
import { type FlowListQuery, flowView } from '../../flows/flow-service.ts'
import { toDot } from '../../flows/graph.ts'
import { spiffeId, trustDomainParams, withErrors } from '../schemas.ts'
import { sinceMs } from './policy.ts'

const MAX_LIST = 5000
const verdict = { type: 'string', enum: ['allowed', 'denied', 'unidentified'] } as const
const instant = {
  type: 'string',
  maxLength: 40,
  description: 'an RFC 3339 time, or a whole number of seconds before now',
} as const

/** An RFC 3339 time or a number of seconds before now, as ms since the epoch. */
function instantMs(value: string | undefined, what: string, now: number): number | undefined {
  if (value === undefined) return undefined
  if (/^[0-9]{1,10}$/.test(value)) return now - Number(value) * 1000
  const ms = /^\d{4}-\d{2}-\d{2}T/.test(value) ? Date.parse(value) : Number.NaN
  if (Number.isNaN(ms)) {
    throw new SigilError(
      'VALIDATION_FAILED',
      `${what} must be an RFC 3339 time (2025-01-31T12:00:00Z) or a number of seconds before now`,
    )
  }
  return ms
}

export default async function flowRoutes(fastify: FastifyInstance): Promise<void> {
  const { flows, trustDomains, clock } = fastify.sigil
  const tags = ['flows']

  fastify.get<{
    Params: { trustDomain: string }
    Querystring: {
      since?: string
      until?: string
      limit?: string
      verdict?: FlowVerdict
      spiffeId?: string
      side?: FlowSide
    }
  }>(
    '/v1/trust-domains/:trustDomain/flows',
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: {
        tags,
        summary: "Flow reports of the trust domain's agents, newest first (each side of a flow reports)",
        params: trustDomainParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            since: instant,
            until: instant,
            limit: { type: 'string', pattern: '^[0-9]{1,4}$', description: `1-${MAX_LIST}, default 500` },
            verdict,
            spiffeId: { ...spiffeId, description: 'flows whose source or destination has this SPIFFE ID' },
            side: { type: 'string', enum: ['egress', 'ingress', 'relay'] },
          },
        },
        response: withErrors({}),
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const q = request.query
      const now = clock.now()
      const limit = Number(q.limit ?? 500)
      if (!(limit >= 1 && limit <= MAX_LIST)) {
        throw new SigilError('VALIDATION_FAILED', `limit must be from 1 to ${MAX_LIST}`)
      }
      const query: FlowListQuery = { limit }
      const since = instantMs(q.since, 'since', now)
      const until = instantMs(q.until, 'until', now)
      if (since !== undefined) query.since = since
      if (until !== undefined) query.until = until
      if (q.verdict !== undefined) query.verdict = q.verdict
      if (q.spiffeId !== undefined) query.spiffeId = q.spiffeId
      if (q.side !== undefined) query.side = q.side
      return { flows: (await flows.list(td, query)).map(flowView) }
    },
  )

  fastify.get<{
    Params: { trustDomain: string }
    Querystring: { since?: string; format?: 'json' | 'dot'; verdict?: FlowVerdict; spiffeId?: string }
  }>(
    '/v1/trust-domains/:trustDomain/flows/graph',
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: {
        tags,
        summary:
          'Who talked to whom over the last `since` seconds: nodes (workloads, outside names, unidentified processes) and edges per port, as JSON or Graphviz DOT',
        params: trustDomainParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            since: { type: 'string', pattern: '^[0-9]{1,8}$', description: 'seconds, default 3600' },
            format: { type: 'string', enum: ['json', 'dot'], description: 'default json' },
            verdict,
            spiffeId,
          },
        },
        response: withErrors({}),
      },
    },
    async (request, reply) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const q = request.query
      const filter: { verdict?: FlowVerdict; spiffeId?: string } = {}
      if (q.verdict !== undefined) filter.verdict = q.verdict
      if (q.spiffeId !== undefined) filter.spiffeId = q.spiffeId
      const graph = await flows.graph(td, sinceMs(q.since), filter)
      if (q.format === 'dot') return reply.type('text/vnd.graphviz; charset=utf-8').send(toDot(graph))
      return graph
    },
  )
}
