import type { FastifyInstance } from 'fastify'
import type { X509IssueResult } from '../../authority/authority.ts'
import { derToPem } from '../../authority/pem.ts'
import type { JwtRequest, X509Request } from '../../authority/svids.ts'
import { dnsNames, spiffeId, trustDomainParams, ttl } from '../schemas.ts'

const x509Item = {
  type: 'object',
  additionalProperties: false,
  required: ['csr', 'spiffeId'],
  properties: {
    csr: { type: 'string', maxLength: 16384, description: 'PKCS#10 CSR, PEM or base64 DER' },
    spiffeId,
    ttl,
    dnsNames,
  },
} as const

function x509View(r: Extract<X509IssueResult, { ok: true }>) {
  const chain = r.chainDer.map((der) => derToPem(der, 'CERTIFICATE'))
  return {
    spiffeId: r.spiffeId,
    serial: r.serial,
    expiresAt: new Date(r.notAfter).toISOString(),
    certChain: chain,
    certChainPem: chain.join(''),
  }
}

export default async function svidRoutes(fastify: FastifyInstance): Promise<void> {
  const { svids, trustDomains, metrics, authority } = fastify.sigil
  const tags = ['SVIDs']

  fastify.post<{ Params: { trustDomain: string }; Body: X509Request }>(
    '/v1/trust-domains/:trustDomain/svids/x509',
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'svid.mint-x509' },
      schema: {
        tags,
        summary: "Sign an X509-SVID for a CSR (chain = leaf + this server's intermediate)",
        params: trustDomainParams,
        body: x509Item,
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const result = await svids.mintX509(td, request.body)
      metrics.svidsIssued.inc({ kind: 'x509' })
      return x509View(result)
    },
  )

  fastify.post<{ Params: { trustDomain: string }; Body: { requests: X509Request[] } }>(
    '/v1/trust-domains/:trustDomain/svids/x509/batch',
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'svid.mint-x509-batch' },
      schema: {
        tags,
        summary: 'Sign many X509-SVIDs at once; each result succeeds or fails on its own',
        params: trustDomainParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['requests'],
          properties: { requests: { type: 'array', items: x509Item, minItems: 1 } },
        },
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const results = await svids.mintX509Batch(td, request.body.requests)
      let ok = 0
      const out = results.map((r) => {
        if (!r.ok) return { error: { code: r.code, message: r.message } }
        ok++
        return x509View(r)
      })
      metrics.svidsIssued.inc({ kind: 'x509' }, ok)
      return { results: out }
    },
  )

  fastify.post<{
    Params: { trustDomain: string }
    Body: { spiffeId: string; audience: string | string[]; ttl?: number }
  }>(
    '/v1/trust-domains/:trustDomain/svids/jwt',
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'svid.mint-jwt' },
      schema: {
        tags,
        summary: 'Sign a JWT-SVID',
        params: trustDomainParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['spiffeId', 'audience'],
          properties: {
            spiffeId,
            audience: {
              anyOf: [
                { type: 'string', maxLength: 512 },
                { type: 'array', items: { type: 'string', maxLength: 512 }, minItems: 1, maxItems: 32 },
              ],
            },
            ttl,
          },
        },
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const { audience, ...rest } = request.body
      const req: JwtRequest = { ...rest, audience: Array.isArray(audience) ? audience : [audience] }
      const jwt = await svids.mintJwt(td, req)
      metrics.svidsIssued.inc({ kind: 'jwt' })
      return { spiffeId: req.spiffeId, token: jwt.token, expiresAt: new Date(jwt.expiresAt).toISOString() }
    },
  )

  fastify.get<{ Params: { trustDomain: string }; Querystring: { hours?: string } }>(
    '/v1/trust-domains/:trustDomain/svids/issued',
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: {
        tags,
        summary:
          'SVIDs (X.509 and JWT, to agents and through the API) issued per clock hour, oldest first; the last hour is in progress',
        params: trustDomainParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            hours: { type: 'string', pattern: '^[0-9]{1,3}$', description: '1-168, default 24' },
          },
        },
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const hours = Math.min(Math.max(Number(request.query.hours ?? 24), 1), 168)
      const buckets = await authority.issuedPerHour(td.name, hours)
      return { hours: buckets.map((b) => ({ start: new Date(b.start).toISOString(), count: b.count })) }
    },
  )
}
