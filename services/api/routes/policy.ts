import type { FastifyInstance } from 'fastify'
import { SigilError } from '../../errors.ts'
import type { Mode } from '../../policy/policy.ts'
import type { PolicyInput, PolicyInputJson, RecommendationFormat } from '../../policy/policy-service.ts'
import { actorOf } from '../auth.ts'
import { spiffeId, trustDomainParams, withErrors } from '../schemas.ts'
import { policyView } from '../views.ts'

/** Windows of observed flows are given in seconds, at most 30 days. */
export const MAX_WINDOW_SECONDS = 30 * 24 * 3600
const DEFAULT_WINDOW_SECONDS = 3600
const MAX_TEXT = 1024 * 1024

const mode = { type: 'string', enum: ['baseline', 'explicit'] } as const
const selector = {
  type: 'string',
  maxLength: 1024,
  description: 'a selector, e.g. unix:path:/bin/sh or k8s:ns:prod',
} as const
const port = {
  anyOf: [
    { type: 'integer', minimum: 1, maximum: 65535 },
    { type: 'string', maxLength: 11, description: 'a port ("5432") or an inclusive range ("8000-8080")' },
  ],
} as const

/** The JSON form of a policy (what GET returns, less its version and text; what Terraform sends). */
export const policyJsonSchema = {
  type: 'object',
  additionalProperties: false,
  description:
    'A policy in JSON. Omitted: mode keeps the current one, allowWithin and rules are empty. Checked by the same parser as a policy file.',
  properties: {
    mode,
    allowWithin: {
      type: 'array',
      maxItems: 64,
      items: { type: 'string', maxLength: 1024 },
      description: 'selector keys such as k8s:ns',
    },
    rules: {
      type: 'array',
      maxItems: 10_000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'from', 'to'],
        properties: {
          name: { type: 'string', maxLength: 128 },
          action: { type: 'string', enum: ['allow', 'deny'], description: 'default allow' },
          from: {
            type: 'object',
            additionalProperties: false,
            properties: { spiffeId, selector },
          },
          to: {
            type: 'object',
            additionalProperties: false,
            properties: {
              spiffeId,
              selector,
              fqdn: { type: 'string', maxLength: 253 },
              ports: { type: 'array', maxItems: 256, items: port, description: 'absent: every port' },
            },
          },
        },
      },
    },
  },
} as const

function windowSeconds(value: string | number | undefined, what: string): number {
  if (value === undefined) return DEFAULT_WINDOW_SECONDS
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > MAX_WINDOW_SECONDS) {
    throw new SigilError(
      'VALIDATION_FAILED',
      `${what} must be a whole number of seconds from 1 to ${MAX_WINDOW_SECONDS} (30 days)`,
    )
  }
  return n
}

export function sinceMs(value: string | number | undefined, what = 'since'): number {
  return windowSeconds(value, what) * 1000
}

/** Exactly one of `text` or `policy`. */
function inputOf(
  body: { text?: string; policy?: PolicyInputJson },
  required: boolean,
): PolicyInput | undefined {
  if (body.text !== undefined && body.policy !== undefined) {
    throw new SigilError('VALIDATION_FAILED', 'send either text (a policy file) or policy (JSON), not both')
  }
  if (body.text !== undefined) return { text: body.text }
  if (body.policy !== undefined) return { policy: body.policy }
  if (required) {
    throw new SigilError(
      'VALIDATION_FAILED',
      'send text (a policy file, as YAML) or policy (the JSON form: { mode, allowWithin, rules })',
    )
  }
  return undefined
}

export default async function policyRoutes(fastify: FastifyInstance): Promise<void> {
  const { policies, trustDomains } = fastify.sigil
  const tags = ['network policy']
  const base = '/v1/trust-domains/:trustDomain/policy'

  fastify.get<{ Params: { trustDomain: string } }>(
    base,
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: {
        tags,
        summary: "The trust domain's current network policy (version 0: none was set)",
        params: trustDomainParams,
        response: withErrors({}),
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return policyView(await policies.get(td))
    },
  )

  fastify.put<{
    Params: { trustDomain: string }
    Body: { text?: string; policy?: PolicyInputJson; expectedVersion?: number }
  }>(
    base,
    {
      bodyLimit: 2 * MAX_TEXT + 64 * 1024,
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'policy.set' },
      schema: {
        tags,
        summary: 'Set the network policy: a policy file (text) or its JSON form (policy); a new version',
        description:
          'Exactly one of text or policy. With expectedVersion, the change is refused (409 POLICY_VERSION_CONFLICT) unless that is the current version. A refused policy (400 POLICY_INVALID, with details { line, column, path }) leaves the running one unchanged.',
        params: trustDomainParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            text: { type: 'string', maxLength: MAX_TEXT, description: 'a policy file (YAML)' },
            policy: policyJsonSchema,
            expectedVersion: { type: 'integer', minimum: 0 },
          },
        },
        response: withErrors({}),
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const input = inputOf(request.body, true)!
      const set = await policies.set(td, input, request.body.expectedVersion, actorOf(request))
      return policyView(set)
    },
  )

  fastify.delete<{ Params: { trustDomain: string } }>(
    base,
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'policy.reset' },
      schema: {
        tags,
        summary: 'Reset the policy to the default (baseline, no rules) as a new version; history is kept',
        params: trustDomainParams,
        response: withErrors({}),
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return policyView(await policies.reset(td, actorOf(request)))
    },
  )

  fastify.put<{ Params: { trustDomain: string }; Body: { mode: Mode } }>(
    `${base}/mode`,
    {
      config: { auth: { kind: 'trust-domain', role: 'admin' }, action: 'policy.mode' },
      schema: {
        tags,
        summary: "Switch the policy's mode; a new version with only `mode:` changed (comments kept)",
        params: trustDomainParams,
        body: { type: 'object', additionalProperties: false, required: ['mode'], properties: { mode } },
        response: withErrors({}),
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return policyView(await policies.setMode(td, request.body.mode, actorOf(request)))
    },
  )

  fastify.get<{ Params: { trustDomain: string }; Querystring: { limit?: string } }>(
    `${base}/versions`,
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: {
        tags,
        summary: 'Policy versions, newest first (the newest 100 are kept)',
        params: trustDomainParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { type: 'string', pattern: '^[0-9]{1,3}$', description: '1-100, default 20' },
          },
        },
        response: withErrors({}),
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const limit = Math.min(Math.max(Number(request.query.limit ?? 20), 1), 100)
      return { versions: (await policies.history(td, limit)).map(policyView) }
    },
  )

  fastify.post<{
    Params: { trustDomain: string }
    Body: { text?: string; policy?: PolicyInputJson; since?: number }
  }>(
    `${base}/dry-run`,
    {
      bodyLimit: 2 * MAX_TEXT + 64 * 1024,
      // A question, not a change: viewers may ask, and it is not audited.
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: {
        tags,
        summary:
          'What the given policy (or the current one) would refuse in explicit mode, over the flows of the last `since` seconds',
        params: trustDomainParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            text: { type: 'string', maxLength: MAX_TEXT },
            policy: policyJsonSchema,
            since: {
              type: 'integer',
              minimum: 1,
              maximum: MAX_WINDOW_SECONDS,
              description: 'seconds, default 3600',
            },
          },
        },
        response: withErrors({}),
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const body = request.body ?? {}
      const result = await policies.dryRun(td, inputOf(body, false), sinceMs(body.since))
      return {
        ...result,
        wouldDeny: result.wouldDeny.map((g) => ({ ...g, lastSeen: new Date(g.lastSeen).toISOString() })),
      }
    },
  )

  fastify.post<{ Params: { trustDomain: string }; Body: { text?: string; policy?: PolicyInputJson } }>(
    `${base}/validate`,
    {
      bodyLimit: 2 * MAX_TEXT + 64 * 1024,
      // A question, not a change (the console checks as the user types): viewers may ask, not audited.
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: {
        tags,
        summary:
          'Check a policy without setting it: `{ valid: true, mode, rules }`, or `{ valid: false, error }` with the error PUT would answer (POLICY_INVALID with details { line, column, path })',
        params: trustDomainParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            text: { type: 'string', maxLength: MAX_TEXT, description: 'a policy file (YAML)' },
            policy: policyJsonSchema,
          },
        },
        response: withErrors({}),
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      const input = inputOf(request.body ?? {}, true)!
      try {
        const { policy } = policies.validate(td, input, await policies.mode(td))
        return { valid: true, mode: policy.mode, rules: policy.rules.length }
      } catch (err) {
        if (!(err instanceof SigilError)) throw err
        const error: { code: string; message: string; details?: Record<string, unknown> } = {
          code: err.code,
          message: err.message,
        }
        if (err.details) error.details = err.details
        return { valid: false, error }
      }
    },
  )

  fastify.get<{
    Params: { trustDomain: string }
    Querystring: { since?: string; format?: RecommendationFormat }
  }>(
    `${base}/recommendation`,
    {
      config: { auth: { kind: 'trust-domain', role: 'viewer' } },
      schema: {
        tags,
        summary:
          'The smallest allow-only policy admitting the identified egress flows of the last `since` seconds, as Sigil YAML, JSON, Kubernetes NetworkPolicy or CiliumNetworkPolicy',
        params: trustDomainParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            since: { type: 'string', pattern: '^[0-9]{1,8}$', description: 'seconds, default 3600' },
            format: { type: 'string', enum: ['yaml', 'json', 'k8s', 'cilium'], description: 'default yaml' },
          },
        },
        response: withErrors({}),
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.params.trustDomain)
      return policies.recommend(td, sinceMs(request.query.since), request.query.format ?? 'yaml')
    },
  )
}
