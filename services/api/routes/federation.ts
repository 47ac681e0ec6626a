// Federation relationships of a trust domain: which foreign trust domains it trusts, where their
// bundles come from, and how each refresh went. The foreign bundles themselves reach agents in their
// sync stream; this trust domain's own bundle is served at /v1/federation/{td}/bundle (bundle.ts).

import type { FastifyInstance } from 'fastify'
import { SigilError } from '../../errors.ts'
import { storedBundle } from '../../federation/federation-service.ts'
import type { FederationProfile, FederationRecord } from '../../store/store.ts'
import { spiffeId, trustDomainParams, withErrors } from '../schemas.ts'

const iso = (ms: number) => new Date(ms).toISOString()

const foreignParams = {
  type: 'object',
  properties: {
    trustDomain: { type: 'string', maxLength: 255 },
    foreign: { type: 'string', maxLength: 255 },
  },
  required: ['trustDomain', 'foreign'],
} as const

const pem = { type: 'string', maxLength: 256 * 1024 } as const

/** A federation as the API shows it: its configuration and how its refreshes went. */
export function federationView(f: FederationRecord, now: number, withBundle = false) {
  const bundle = storedBundle(f, now)
  const view: Record<string, unknown> = {
    trustDomain: f.trustDomain,
    foreignTrustDomain: f.foreignTrustDomain,
    bundleEndpointUrl: f.bundleEndpointUrl,
    profile: f.profile,
    endpointSpiffeId: f.endpointSpiffeId ?? null,
    caBundlePem: f.caBundlePem ?? null,
    sequence: f.sequence,
    roots: bundle?.roots.length ?? 0,
    jwtKeys: bundle?.jwtKeys.length ?? 0,
    refreshHintSeconds: f.refreshHintSeconds,
    lastRefreshAt: f.lastRefreshAt ? iso(f.lastRefreshAt) : null,
    lastError: f.lastError ?? null,
    lastErrorAt: f.lastErrorAt ? iso(f.lastErrorAt) : null,
    createdAt: iso(f.createdAt),
  }
  if (withBundle) view.bundle = f.bundle ? JSON.parse(f.bundle) : null
  return view
}

export default async function federationRoutes(fastify: FastifyInstance): Promise<void> {
  const { federation, trustDomains, clock } = fastify.sigil
  const tags = ['federation']
  const base = '/v1/trust-domains/:trustDomain/federations'

  fastify.post<{
    Params: { trustDomain: string }
    Body: {
      foreignTrustDomain: string
      bundleEndpointUrl: string
      profile?: FederationProfile
      endpointSpiffeId?: string
      trustBundle?: string
      caBundlePem?: string
    }
  }>(
    base,
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'federation.create' },
      schema: {
        tags,
        summary: 'Federate with a foreign trust domain: fetch its bundle from its bundle endpoint',
        description:
          'The bundle is fetched once at creation (the result is in lastError / lastRefreshAt) and then at its refresh hint. https_web (default): the endpoint has a web certificate, verified against the system roots plus caBundlePem. https_spiffe: the endpoint presents an X509-SVID with endpointSpiffeId, verified against the foreign bundle held (trustBundle, SPIFFE JSON or PEM, bootstraps it).',
        params: trustDomainParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['foreignTrustDomain', 'bundleEndpointUrl'],
          properties: {
            foreignTrustDomain: { type: 'string', maxLength: 255 },
            bundleEndpointUrl: { type: 'string', maxLength: 2048, description: 'https:// only' },
            profile: { type: 'string', enum: ['https_web', 'https_spiffe'] },
            endpointSpiffeId: spiffeId,
            trustBundle: { type: 'string', maxLength: 1024 * 1024 },
            caBundlePem: pem,
          },
        },
        response: withErrors({}),
      },
    },
    async (request, reply) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const result = await federation.create(td, request.body)
      return reply.code(201).send(federationView(result.record, clock.now()))
    },
  )

  fastify.get<{ Params: { trustDomain: string } }>(
    base,
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: { tags, summary: 'The federations of a trust domain', params: trustDomainParams },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const now = clock.now()
      return { federations: (await federation.list(td)).map((f) => federationView(f, now)) }
    },
  )

  fastify.get<{ Params: { trustDomain: string; foreign: string } }>(
    `${base}/:foreign`,
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: {
        tags,
        summary: 'One federation, its refresh status and the foreign bundle held (SPIFFE format)',
        params: foreignParams,
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return federationView(await federation.get(td, request.params.foreign), clock.now(), true)
    },
  )

  fastify.post<{ Params: { trustDomain: string; foreign: string } }>(
    `${base}/:foreign/refresh`,
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'federation.refresh' },
      schema: {
        tags,
        summary: 'Fetch the foreign bundle now',
        description:
          'Answers the federation when the bundle was fetched and accepted (stored or unchanged); a refused bundle answers 502 FEDERATION_REFRESH_FAILED with the reason, recorded as lastError, and the previous bundle stays.',
        params: foreignParams,
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      await federation.get(td, request.params.foreign)
      const result = await federation.refresh(td.name, request.params.foreign)
      if (!result.ok) {
        throw new SigilError(
          'FEDERATION_REFRESH_FAILED',
          `the bundle of ${request.params.foreign} was not refreshed: ${result.error}; the previous bundle stays in use`,
        )
      }
      return { ...federationView(result.record, clock.now()), outcome: result.outcome }
    },
  )

  fastify.delete<{ Params: { trustDomain: string; foreign: string } }>(
    `${base}/:foreign`,
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'federation.delete' },
      schema: {
        tags,
        summary: "Stop federating: the foreign bundle is dropped from this trust domain's agents",
        params: foreignParams,
      },
    },
    async (request, reply) => {
      const td = await trustDomains.get(request.params.trustDomain)
      await federation.delete(td, request.params.foreign)
      return reply.code(204).send()
    },
  )
}
