import type { FastifyInstance } from 'fastify'
import type { AuthorityStatus } from '../../authority/authority.ts'
import { trustDomainParams } from '../schemas.ts'

const iso = (ms: number) => new Date(ms).toISOString()

function statusView(s: AuthorityStatus) {
  return {
    roots: s.roots.map((r) => ({ id: r.id, notBefore: iso(r.notBefore), notAfter: iso(r.notAfter) })),
    intermediates: s.intermediates.map((i) => ({
      ...i,
      notBefore: iso(i.notBefore),
      notAfter: iso(i.notAfter),
    })),
    jwtKeys: s.jwtKeys.map((k) => ({ ...k, notBefore: iso(k.notBefore), notAfter: iso(k.notAfter) })),
    nextRotation: s.nextRotation ? iso(s.nextRotation) : null,
  }
}

export default async function authorityRoutes(fastify: FastifyInstance): Promise<void> {
  const { authority, trustDomains } = fastify.sigil
  const tags = ['authority']

  fastify.get<{ Params: { trustDomain: string } }>(
    '/v1/trust-domains/:trustDomain/authority',
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: {
        tags,
        summary: "Root CAs, and this server's intermediate CAs and JWT keys with their rotation states",
        params: trustDomainParams,
      },
    },
    async (request) => statusView(await authority.status(await trustDomains.get(request.params.trustDomain))),
  )

  fastify.post<{ Params: { trustDomain: string }; Querystring: { root?: 'true' | 'false' } }>(
    '/v1/trust-domains/:trustDomain/authority/rotate',
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'authority.rotate' },
      schema: {
        tags,
        summary: "Rotate this server's intermediate CA and JWT key now (SVIDs already issued stay valid)",
        description:
          'With ?root=true a new root CA is added to the bundle first and new SVIDs chain to it; the old root stays in the bundle until it expires.',
        params: trustDomainParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { root: { type: 'string', enum: ['true', 'false'] } },
        },
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return statusView(await authority.rotate(td, { root: request.query.root === 'true' }))
    },
  )
}
