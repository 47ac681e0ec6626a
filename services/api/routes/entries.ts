import type { FastifyInstance } from 'fastify'
import { SigilError } from '../../errors.ts'
import type { EntryInput } from '../../registry/entries.ts'
import { dnsNames, idParams, spiffeId, trustDomainParams, ttl } from '../schemas.ts'
import { entryView } from '../views.ts'

interface EntryBody {
  spiffeId: string
  parentId: string
  selectors: string[]
  x509Ttl?: number
  jwtTtl?: number
  dnsNames?: string[]
  admin?: boolean
  downstream?: boolean
  federatesWith?: string[]
  expiresAt?: string | null
}

const entryProperties = {
  spiffeId,
  parentId: spiffeId,
  selectors: {
    type: 'array',
    items: { type: 'string', maxLength: 1024 },
    maxItems: 64,
    description: 'TYPE:KEY[:VALUE], e.g. unix:uid:1000, k8s:ns:prod, unix:sha256:HEX',
  },
  x509Ttl: ttl,
  jwtTtl: ttl,
  dnsNames,
  admin: { type: 'boolean' },
  downstream: { type: 'boolean' },
  federatesWith: { type: 'array', items: { type: 'string', maxLength: 255 }, maxItems: 64 },
  expiresAt: { type: ['string', 'null'], format: 'date-time' },
} as const

function toInput(body: Partial<EntryBody>): Partial<EntryInput> {
  const { expiresAt, ...rest } = body
  const input: Partial<EntryInput> = { ...rest }
  if (expiresAt !== undefined) {
    if (expiresAt === null) input.expiresAt = 0
    else {
      const ms = Date.parse(expiresAt)
      if (Number.isNaN(ms)) throw new SigilError('ENTRY_INVALID', 'expiresAt must be an RFC 3339 date-time')
      input.expiresAt = ms
    }
  }
  return input
}

export default async function entryRoutes(fastify: FastifyInstance): Promise<void> {
  const { entries, trustDomains } = fastify.sigil
  const tags = ['registration entries']

  fastify.post<{ Params: { trustDomain: string }; Body: EntryBody }>(
    '/v1/trust-domains/:trustDomain/entries',
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'entry.create' },
      schema: {
        tags,
        summary: 'Create a registration entry',
        params: trustDomainParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['spiffeId', 'parentId', 'selectors'],
          properties: entryProperties,
        },
      },
    },
    async (request, reply) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const entry = await entries.create(td, toInput(request.body) as EntryInput)
      return reply.code(201).send(entryView(entry))
    },
  )

  fastify.get<{
    Params: { trustDomain: string }
    Querystring: { spiffeId?: string; parentId?: string; selector?: string }
  }>(
    '/v1/trust-domains/:trustDomain/entries',
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: {
        tags,
        summary: 'List registration entries, optionally filtered',
        params: trustDomainParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { spiffeId, parentId: spiffeId, selector: { type: 'string', maxLength: 1024 } },
        },
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return { entries: (await entries.list(td, request.query)).map(entryView) }
    },
  )

  fastify.get<{ Params: { trustDomain: string; id: string } }>(
    '/v1/trust-domains/:trustDomain/entries/:id',
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: { tags, summary: 'Show a registration entry', params: idParams },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return entryView(await entries.get(td, request.params.id))
    },
  )

  fastify.patch<{ Params: { trustDomain: string; id: string }; Body: Partial<EntryBody> }>(
    '/v1/trust-domains/:trustDomain/entries/:id',
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'entry.update' },
      schema: {
        tags,
        summary: 'Change a registration entry (only the fields given)',
        params: idParams,
        body: { type: 'object', additionalProperties: false, properties: entryProperties },
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return entryView(await entries.update(td, request.params.id, toInput(request.body)))
    },
  )

  fastify.delete<{ Params: { trustDomain: string; id: string } }>(
    '/v1/trust-domains/:trustDomain/entries/:id',
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'entry.delete' },
      schema: { tags, summary: 'Delete a registration entry', params: idParams },
    },
    async (request, reply) => {
      const td = await trustDomains.get(request.params.trustDomain)
      await entries.delete(td, request.params.id)
      return reply.code(204).send()
    },
  )
}
