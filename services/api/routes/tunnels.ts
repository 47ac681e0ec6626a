// Tunnels through the broker (services/broker): declared per trust domain, used by agents whose proxy
// configuration names `tunnel: <name>`.

import type { FastifyInstance } from 'fastify'
import { tunnelView } from '../../broker/tunnels.ts'
import { spiffeId, trustDomainParams, withErrors } from '../schemas.ts'

const nameParams = {
  type: 'object',
  properties: { trustDomain: { type: 'string', maxLength: 255 }, name: { type: 'string', maxLength: 63 } },
  required: ['trustDomain', 'name'],
} as const

export default async function tunnelRoutes(fastify: FastifyInstance): Promise<void> {
  const { tunnels, trustDomains } = fastify.sigil
  const tags = ['tunnels']
  const base = '/v1/trust-domains/:trustDomain/tunnels'

  fastify.post<{
    Params: { trustDomain: string }
    Body: { name: string; spiffeId: string; agent: string; service?: string; port?: number }
  }>(
    base,
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'tunnel.create' },
      schema: {
        tags,
        summary: 'Declare a tunnel: a service behind an agent, reachable through the broker',
        description:
          'Agents whose proxy configuration has an upstream with `tunnel: NAME` reach the service through the broker; the policy decides who may, like any other flow.',
        params: trustDomainParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'spiffeId', 'agent'],
          properties: {
            name: { type: 'string', maxLength: 63, description: 'a DNS label' },
            spiffeId: { ...spiffeId, description: "the service's identity" },
            agent: { ...spiffeId, description: 'the SPIFFE ID of the agent that offers the service' },
            service: {
              type: 'string',
              maxLength: 63,
              description: "the service's name in that agent's proxy configuration (default: name)",
            },
            port: { type: 'integer', minimum: 1, maximum: 65535, description: "the service's port" },
          },
        },
        response: withErrors({}),
      },
    },
    async (request, reply) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return reply.code(201).send(tunnelView(await tunnels.create(td, request.body)))
    },
  )

  fastify.get<{ Params: { trustDomain: string } }>(
    base,
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: { tags, summary: 'The tunnels of a trust domain', params: trustDomainParams },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return { tunnels: (await tunnels.list(td)).map(tunnelView) }
    },
  )

  fastify.get<{ Params: { trustDomain: string; name: string } }>(
    `${base}/:name`,
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: { tags, summary: 'One tunnel', params: nameParams },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return tunnelView(await tunnels.get(td, request.params.name))
    },
  )

  fastify.delete<{ Params: { trustDomain: string; name: string } }>(
    `${base}/:name`,
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'tunnel.delete' },
      schema: {
        tags,
        summary: 'Delete a tunnel (open connections through it end with the broker)',
        params: nameParams,
      },
    },
    async (request, reply) => {
      const td = await trustDomains.get(request.params.trustDomain)
      await tunnels.delete(td, request.params.name)
      return reply.code(204).send()
    },
  )
}
