// gcp_iit: the agent presents a GCE instance identity token (RS256, signed by Google, requested with
// format=full so it carries the google.compute_engine claims). By default an instance attests once
// (trust on first use): a token stolen from the metadata server cannot mint a second agent.

import { failed, quote } from '../errors.ts'
import { PreparedConfigs } from './config.ts'
import { COMPACT_JWS, evidenceObject, MAX_TOKEN_CHARS, requiredString } from './evidence.ts'
import { JwksSource, verifyJwt } from './jwt.ts'
import type { NodeAttestationContext, NodeAttestationStep } from './node-attestor.ts'
import type { RegisteredAttestor } from './registry.ts'
import { claimOnce, FOREVER } from './replay.ts'
import { agentId, Selectors } from './result.ts'

const NAME = 'gcp_iit'
export const GOOGLE_JWKS_URL = 'https://www.googleapis.com/oauth2/v3/certs'
const GOOGLE_ISSUERS = ['https://accounts.google.com', 'accounts.google.com']
const PROJECT_ID = '^[a-z][a-z0-9-]{4,28}[a-z0-9]$'

export const gcpIitConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['audience'],
  properties: {
    audience: { type: 'string', minLength: 1, maxLength: 512 },
    jwksUrl: { type: 'string', pattern: '^https?://[^\\s]+$', maxLength: 2048 },
    projectIdAllowList: {
      type: 'array',
      minItems: 1,
      maxItems: 1024,
      items: { type: 'string', pattern: PROJECT_ID },
    },
    allowAnyProject: { type: 'boolean' },
    allowReattest: { type: 'boolean' },
  },
}

export interface GcpIitConfig {
  audience: string
  jwksUrl?: string
  projectIdAllowList?: string[]
  allowAnyProject?: boolean
  allowReattest?: boolean
}

interface Prepared {
  config: GcpIitConfig
  jwks: JwksSource
  projects: Set<string> | undefined
}

function prepare(config: GcpIitConfig): Prepared {
  if (!config.projectIdAllowList && config.allowAnyProject !== true) {
    throw new Error(
      'set projectIdAllowList (the GCP projects whose instances may attest), or allowAnyProject: true to accept an instance of any project',
    )
  }
  return {
    config,
    jwks: new JwksSource({ jwksUrl: config.jwksUrl ?? GOOGLE_JWKS_URL }, `${NAME} Google`),
    projects: config.projectIdAllowList ? new Set(config.projectIdAllowList) : undefined,
  }
}

interface ComputeEngine {
  projectId: string
  zone: string
  instanceId: string
  instanceName: string
}

function computeEngine(payload: Record<string, unknown>): ComputeEngine {
  const ce =
    payload.google && typeof payload.google === 'object'
      ? (payload.google as Record<string, unknown>).compute_engine
      : undefined
  const field = (key: string, pattern: RegExp): string | undefined => {
    const v = ce && typeof ce === 'object' ? (ce as Record<string, unknown>)[key] : undefined
    return typeof v === 'string' && pattern.test(v) ? v : undefined
  }
  const projectId = field('project_id', /^[a-z0-9.:-]{1,100}$/)
  const zone = field('zone', /^[a-z0-9-]{1,63}$/)
  const instanceId = field('instance_id', /^[0-9]{1,20}$/)
  const instanceName = field('instance_name', /^[a-z0-9-]{1,63}$/)
  if (!projectId || !zone || !instanceId || !instanceName) {
    throw failed(
      `${NAME}: token has no complete google.compute_engine claims (project_id, zone, instance_id, instance_name); the agent must request it with format=full`,
    )
  }
  return { projectId, zone, instanceId, instanceName }
}

export function createGcpIitAttestor(): RegisteredAttestor {
  const configs = new PreparedConfigs(NAME, gcpIitConfigSchema, prepare)
  return {
    name: NAME,
    configSchema: gcpIitConfigSchema,
    validateConfig: (raw) => void configs.validate(raw),
    async attest(
      evidence: unknown,
      ctx: NodeAttestationContext,
      round?: unknown,
    ): Promise<NodeAttestationStep> {
      if (round !== undefined) throw new TypeError('gcp_iit has a single round')
      const prepared = configs.get(ctx.trustDomain, ctx.config)
      const obj = evidenceObject(NAME, evidence, ['token'])
      const token = requiredString(NAME, obj, 'token', {
        max: MAX_TOKEN_CHARS,
        pattern: COMPACT_JWS,
        patternHint: 'a compact JWT',
      })
      const payload = await verifyJwt(NAME, token, prepared.jwks, ctx, {
        issuer: GOOGLE_ISSUERS,
        audience: prepared.config.audience,
        algorithms: ['RS256'],
        label: 'instance identity token',
      })
      const ce = computeEngine(payload as Record<string, unknown>)
      const instance = `instance ${ce.instanceId} (${ce.instanceName}) of project ${ce.projectId}`
      if (prepared.projects && !prepared.projects.has(ce.projectId)) {
        throw failed(
          `${NAME}: ${instance} may not attest: project ${quote(ce.projectId)} is not in projectIdAllowList`,
        )
      }
      const result = {
        agentId: agentId(ctx.trustDomain, NAME, ce.projectId, ce.instanceId),
        selectors: new Selectors(NAME)
          .add('project-id', ce.projectId)
          .add('zone', ce.zone)
          .add('instance-name', ce.instanceName)
          .add('sa', typeof payload.email === 'string' ? payload.email : undefined).list,
        canReattest: prepared.config.allowReattest === true,
      }
      if (!result.canReattest) {
        await claimOnce(
          ctx,
          `${NAME}:${ce.projectId}:${ce.instanceId}`,
          FOREVER,
          `${NAME}: ${instance} has already attested, and an instance attests once; to let it attest again set allowReattest in nodeAttestors.gcp_iit`,
        )
      }
      return { done: true, result }
    },
  }
}
