import type { FastifyInstance } from 'fastify'
import type { Grant } from '../../store/store.ts'
import { ttl } from '../schemas.ts'
import { apiTokenView } from '../views.ts'

export default async function apiTokenRoutes(fastify: FastifyInstance): Promise<void> {
  const { apiTokens } = fastify.sigil
  const tags = ['API tokens']

  fastify.get(
    '/v1/whoami',
    {
      config: { auth: { kind: 'authenticated' } },
      schema: { tags, summary: "The caller's token name and grants" },
    },
    async (request) => ({
      tokenId: request.principal!.tokenId,
      name: request.principal!.name,
      grants: request.principal!.grants,
    }),
  )

  fastify.post<{ Body: { name: string; grants: Grant[]; ttl?: number } }>(
    '/v1/api-tokens',
    {
      config: { auth: { kind: 'authenticated' }, action: 'api-token.create' },
      schema: {
        tags,
        summary: 'Create an API token with roles on trust domains (returned once; stored hashed)',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'grants'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 128 },
            grants: {
              type: 'array',
              minItems: 1,
              maxItems: 64,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['trustDomain', 'role'],
                properties: {
                  trustDomain: {
                    type: 'string',
                    maxLength: 255,
                    description: 'a trust domain name, or * for all',
                  },
                  role: { type: 'string', enum: ['admin', 'viewer'] },
                },
              },
            },
            ttl,
          },
        },
      },
    },
    async (request, reply) => {
      const { token, record } = await apiTokens.create(request.principal, request.body)
      return reply.code(201).send({ ...apiTokenView(record), token })
    },
  )

  fastify.get(
    '/v1/api-tokens',
    {
      config: { auth: { kind: 'authenticated' } },
      schema: { tags, summary: 'List the API tokens the caller administers' },
    },
    async (request) => ({ apiTokens: (await apiTokens.list(request.principal!)).map(apiTokenView) }),
  )

  fastify.delete<{ Params: { id: string } }>(
    '/v1/api-tokens/:id',
    {
      config: { auth: { kind: 'authenticated' }, action: 'api-token.revoke' },
      schema: {
        tags,
        summary: 'Revoke an API token',
        params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'] },
      },
    },
    async (request, reply) => {
      await apiTokens.revoke(request.principal!, request.params.id)
      return reply.code(204).send()
    },
  )
}
