import type { FastifyInstance } from 'fastify'
import { bundlePem, spiffeBundle } from '../../authority/bundle.ts'
import { trustDomainParams } from '../schemas.ts'

export default async function bundleRoutes(fastify: FastifyInstance): Promise<void> {
  const { authority, trustDomains, federation } = fastify.sigil

  fastify.get<{ Params: { trustDomain: string }; Querystring: { format?: 'pem' | 'spiffe' } }>(
    '/v1/trust-domains/:trustDomain/bundle',
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: {
        tags: ['bundles'],
        summary: 'The trust domain bundle, as a SPIFFE bundle (JWK Set) or as PEM',
        params: trustDomainParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { format: { type: 'string', enum: ['pem', 'spiffe'] } },
        },
      },
    },
    async (request, reply) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const bundle = await authority.bundle(td.name)
      if (request.query.format === 'pem') return reply.type('application/x-pem-file').send(bundlePem(bundle))
      return spiffeBundle(bundle, federation.refreshHintSeconds)
    },
  )

  // The federation bundle endpoint (SPIFFE profile https_web): public, like SPIRE's, because a
  // federating server has no credentials of ours. It reveals only public keys.
  fastify.get<{ Params: { trustDomain: string } }>(
    '/v1/federation/:trustDomain/bundle',
    {
      config: { auth: { kind: 'none' } },
      schema: {
        tags: ['bundles'],
        summary: 'Public SPIFFE bundle endpoint for federation (https_web profile)',
        params: trustDomainParams,
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return spiffeBundle(await authority.bundle(td.name), federation.refreshHintSeconds)
    },
  )
}
