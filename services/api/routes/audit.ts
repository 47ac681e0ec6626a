import type { FastifyInstance } from 'fastify'
import { trustDomainParams } from '../schemas.ts'
import { auditView } from '../views.ts'

const query = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'string', pattern: '^[0-9]{1,4}$', description: 'at most 1000' },
    before: { type: 'string', pattern: '^[0-9]{1,15}$', description: 'only events with a smaller seq' },
  },
} as const

function toQuery(q: { limit?: string; before?: string }): { limit?: number; before?: number } {
  const out: { limit?: number; before?: number } = {}
  if (q.limit !== undefined) out.limit = Number(q.limit)
  if (q.before !== undefined) out.before = Number(q.before)
  return out
}

export default async function auditRoutes(fastify: FastifyInstance): Promise<void> {
  const { audit, trustDomains } = fastify.sigil
  const tags = ['audit']

  fastify.get<{ Params: { trustDomain: string }; Querystring: { limit?: string; before?: string } }>(
    '/v1/trust-domains/:trustDomain/audit',
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: {
        tags,
        summary: "The trust domain's audit log, newest first",
        params: trustDomainParams,
        querystring: query,
      },
    },
    async (request) => {
      await trustDomains.get(request.params.trustDomain)
      return { events: (await audit.list(request.params.trustDomain, toQuery(request.query))).map(auditView) }
    },
  )

  fastify.get<{ Querystring: { limit?: string; before?: string } }>(
    '/v1/audit',
    {
      config: { auth: { kind: 'installation-admin' } },
      schema: {
        tags,
        summary:
          'The installation audit log (trust domain creation, API tokens, refused cross-tenant attempts)',
        querystring: query,
      },
    },
    async (request) => ({ events: (await audit.list('', toQuery(request.query))).map(auditView) }),
  )
}
