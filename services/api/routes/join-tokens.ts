import type { FastifyInstance } from 'fastify'
import { idParams, spiffeId, trustDomainParams, ttl } from '../schemas.ts'
import { joinTokenView } from '../views.ts'

export default async function joinTokenRoutes(fastify: FastifyInstance): Promise<void> {
  const { joinTokens, trustDomains } = fastify.sigil
  const tags = ['join tokens']

  fastify.post<{ Params: { trustDomain: string }; Body: { ttl?: number; spiffeId?: string } }>(
    '/v1/trust-domains/:trustDomain/join-tokens',
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'join-token.create' },
      schema: {
        tags,
        summary: 'Create a single-use join token (returned once; only its hash is stored)',
        params: trustDomainParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { ttl: { ...ttl, description: 'seconds, default 3600' }, spiffeId },
        },
      },
    },
    async (request, reply) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const { token, record } = await joinTokens.create(td, request.body ?? {})
      return reply.code(201).send({ ...joinTokenView(record), token })
    },
  )

  fastify.get<{ Params: { trustDomain: string } }>(
    '/v1/trust-domains/:trustDomain/join-tokens',
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: { tags, summary: 'List unused join tokens (without their secrets)', params: trustDomainParams },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return { joinTokens: (await joinTokens.list(td)).map(joinTokenView) }
    },
  )

  fastify.delete<{ Params: { trustDomain: string; id: string } }>(
    '/v1/trust-domains/:trustDomain/join-tokens/:id',
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'join-token.revoke' },
      schema: { tags, summary: 'Revoke an unused join token', params: idParams },
    },
    async (request, reply) => {
      const td = await trustDomains.get(request.params.trustDomain)
      await joinTokens.revoke(td, request.params.id)
      return reply.code(204).send()
    },
  )
}
