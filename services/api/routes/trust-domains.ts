import type { FastifyInstance } from 'fastify'
import { canSee } from '../../auth/api-tokens.ts'
import type { TrustDomainRecord } from '../../store/store.ts'
import type { SettingsInput } from '../../tenancy/trust-domains.ts'
import { actorOf } from '../auth.ts'
import { settingsSchema, trustDomainParams, withErrors } from '../schemas.ts'
import { trustDomainView } from '../views.ts'

export default async function trustDomainRoutes(fastify: FastifyInstance): Promise<void> {
  const { trustDomains, policies } = fastify.sigil
  const view = async (td: TrustDomainRecord) => trustDomainView(td, await policies.mode(td))

  fastify.post<{ Body: { name: string; settings?: SettingsInput } }>(
    '/v1/trust-domains',
    {
      config: {
        auth: { kind: 'installation-admin' },
        action: 'trust-domain.create',
        auditTrustDomainField: 'name',
      },
      schema: {
        tags: ['trust domains'],
        summary: 'Create a trust domain (a tenant) and its root CA',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: { name: { type: 'string', maxLength: 255 }, settings: settingsSchema },
        },
        response: withErrors({}),
      },
    },
    async (request, reply) => {
      const td = await trustDomains.create(request.body.name, request.body.settings)
      return reply.code(201).send(trustDomainView(td))
    },
  )

  fastify.get(
    '/v1/trust-domains',
    {
      config: { auth: { kind: 'authenticated' } },
      schema: { tags: ['trust domains'], summary: 'List the trust domains the caller may see' },
    },
    async (request) => {
      const all = await trustDomains.list()
      const visible = all.filter((td) => canSee(request.principal!, td.name))
      return { trustDomains: await Promise.all(visible.map(view)) }
    },
  )

  fastify.get<{ Params: { trustDomain: string } }>(
    '/v1/trust-domains/:trustDomain',
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: { tags: ['trust domains'], summary: 'Show a trust domain', params: trustDomainParams },
    },
    async (request) => view(await trustDomains.get(request.params.trustDomain)),
  )

  fastify.patch<{ Params: { trustDomain: string }; Body: { settings: SettingsInput } }>(
    '/v1/trust-domains/:trustDomain',
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'trust-domain.update' },
      schema: {
        tags: ['trust domains'],
        summary:
          "Change a trust domain's settings (TTL limits, policy mode: a new policy mode writes a new policy version)",
        params: trustDomainParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['settings'],
          properties: { settings: settingsSchema },
        },
      },
    },
    async (request) =>
      view(
        await trustDomains.updateSettings(
          request.params.trustDomain,
          request.body.settings,
          actorOf(request),
        ),
      ),
  )

  fastify.delete<{ Params: { trustDomain: string } }>(
    '/v1/trust-domains/:trustDomain',
    {
      config: {
        auth: { kind: 'trust-domain', role: 'admin' },
        action: 'trust-domain.delete',
        auditInInstallationLog: true,
      },
      schema: {
        tags: ['trust domains'],
        summary: 'Delete a trust domain with its CA, entries, tokens and audit log',
        params: trustDomainParams,
      },
    },
    async (request, reply) => {
      await trustDomains.delete(request.params.trustDomain)
      return reply.code(204).send()
    },
  )
}
