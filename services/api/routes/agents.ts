import type { FastifyInstance } from 'fastify'
import { trustDomainParams } from '../schemas.ts'
import { agentView } from '../views.ts'

const agentParams = {
  type: 'object',
  properties: {
    trustDomain: { type: 'string', maxLength: 255 },
    id: { type: 'string', maxLength: 2048, description: "the agent's SPIFFE ID, URL-encoded" },
  },
  required: ['trustDomain', 'id'],
} as const

export default async function agentRoutes(fastify: FastifyInstance): Promise<void> {
  const { agents, trustDomains } = fastify.sigil
  const tags = ['agents']

  fastify.get<{ Params: { trustDomain: string } }>(
    '/v1/trust-domains/:trustDomain/agents',
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: { tags, summary: 'Attested agents', params: trustDomainParams },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return { agents: (await agents.list(td)).map(agentView) }
    },
  )

  fastify.get<{ Params: { trustDomain: string; id: string } }>(
    '/v1/trust-domains/:trustDomain/agents/:id',
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: { tags, summary: 'One agent', params: agentParams },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return agentView(await agents.get(td, request.params.id))
    },
  )

  fastify.post<{ Params: { trustDomain: string; id: string } }>(
    '/v1/trust-domains/:trustDomain/agents/:id/ban',
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'agent.ban' },
      schema: {
        tags,
        summary: 'Ban an agent: it cannot renew or attest again until evicted',
        params: agentParams,
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      await agents.ban(td, request.params.id)
      return agentView(await agents.get(td, request.params.id))
    },
  )

  fastify.delete<{ Params: { trustDomain: string; id: string } }>(
    '/v1/trust-domains/:trustDomain/agents/:id',
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'agent.evict' },
      schema: {
        tags,
        summary: 'Evict an agent: its record is deleted; it may attest again',
        params: agentParams,
      },
    },
    async (request, reply) => {
      const td = await trustDomains.get(request.params.trustDomain)
      await agents.evict(td, request.params.id)
      return reply.code(204).send()
    },
  )
}
