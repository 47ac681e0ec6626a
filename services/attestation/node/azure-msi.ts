// azure_msi: the agent presents an access token its VM's managed identity got from the Azure IMDS for
// a configured resource (the token's audience). The tenant's keys sign it; xms_mirid names the Azure
// resource the identity belongs to. By default a principal attests once (trust on first use).

import { failed, quote } from '../errors.ts'
import { PreparedConfigs } from './config.ts'
import { COMPACT_JWS, evidenceObject, MAX_TOKEN_CHARS, requiredString } from './evidence.ts'
import { JwksSource, verifyJwt } from './jwt.ts'
import type { NodeAttestationContext, NodeAttestationStep } from './node-attestor.ts'
import type { RegisteredAttestor } from './registry.ts'
import { claimOnce, FOREVER } from './replay.ts'
import { agentId, Selectors } from './result.ts'

const NAME = 'azure_msi'
const GUID = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
const GUID_RE = new RegExp(GUID)

export function defaultAzureJwksUrl(tenantId: string): string {
  return `https://login.microsoftonline.com/${tenantId}/discovery/keys`
}

export const azureMsiConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['tenants'],
  properties: {
    tenants: {
      type: 'object',
      minProperties: 1,
      maxProperties: 256,
      propertyNames: { pattern: GUID },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['audience'],
        properties: {
          audience: { type: 'string', minLength: 1, maxLength: 512 },
          jwksUrl: { type: 'string', pattern: '^https?://[^\\s]+$', maxLength: 2048 },
        },
      },
    },
    allowReattest: { type: 'boolean' },
  },
}

export interface AzureMsiConfig {
  tenants: Record<string, { audience: string; jwksUrl?: string }>
  allowReattest?: boolean
}

interface PreparedTenant {
  tenantId: string
  audience: string
  jwks: JwksSource
}

interface Prepared {
  tenants: Map<string, PreparedTenant>
  allowReattest: boolean
}

function prepare(config: AzureMsiConfig): Prepared {
  const tenants = new Map<string, PreparedTenant>()
  for (const [id, tenant] of Object.entries(config.tenants)) {
    const tenantId = id.toLowerCase()
    tenants.set(tenantId, {
      tenantId,
      audience: tenant.audience,
      jwks: new JwksSource(
        { jwksUrl: tenant.jwksUrl ?? defaultAzureJwksUrl(tenantId) },
        `${NAME} tenant ${tenantId}`,
      ),
    })
  }
  return { tenants, allowReattest: config.allowReattest === true }
}

/** The unverified tenant id, only to pick the tenant's keys; the verified token must repeat it. */
function unverifiedTenant(token: string): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'))
    return typeof payload?.tid === 'string' ? payload.tid.toLowerCase() : undefined
  } catch {
    return undefined
  }
}

interface ResourceId {
  subscriptionId: string
  resourceGroup: string
  vmName?: string
}

const MIRID =
  /^\/subscriptions\/([0-9a-fA-F-]{36})\/resourcegroups\/([^/]{1,90})\/providers\/([^/]{1,100})\/([^/]{1,100})\/([^/]{1,100})$/i

function parseMirid(mirid: unknown, principal: string): ResourceId {
  const m = typeof mirid === 'string' ? MIRID.exec(mirid) : null
  if (!m) {
    throw failed(
      `${NAME}: token of principal ${principal} has no usable xms_mirid (/subscriptions/S/resourcegroups/G/providers/...); it is not a managed identity token`,
    )
  }
  const [, subscriptionId, resourceGroup, provider, type, name] = m
  const vm = provider!.toLowerCase() === 'microsoft.compute' && type!.toLowerCase() === 'virtualmachines'
  return {
    subscriptionId: subscriptionId!.toLowerCase(),
    resourceGroup: resourceGroup!,
    vmName: vm ? name : undefined,
  }
}

export function createAzureMsiAttestor(): RegisteredAttestor {
  const configs = new PreparedConfigs(NAME, azureMsiConfigSchema, prepare)
  return {
    name: NAME,
    configSchema: azureMsiConfigSchema,
    validateConfig: (raw) => void configs.validate(raw),
    async attest(
      evidence: unknown,
      ctx: NodeAttestationContext,
      round?: unknown,
    ): Promise<NodeAttestationStep> {
      if (round !== undefined) throw new TypeError('azure_msi has a single round')
      const prepared = configs.get(ctx.trustDomain, ctx.config)
      const obj = evidenceObject(NAME, evidence, ['token'])
      const token = requiredString(NAME, obj, 'token', {
        max: MAX_TOKEN_CHARS,
        pattern: COMPACT_JWS,
        patternHint: 'a compact JWT',
      })
      const claimed = unverifiedTenant(token)
      const tenant = claimed === undefined ? undefined : prepared.tenants.get(claimed)
      if (!tenant) {
        throw failed(
          `${NAME}: token's tenant ${quote(claimed ?? '(none)')} is not configured for trust domain ${quote(ctx.trustDomain)} (configured: ${[...prepared.tenants.keys()].join(', ')})`,
        )
      }
      const label = `tenant ${tenant.tenantId}`
      const payload = (await verifyJwt(NAME, token, tenant.jwks, ctx, {
        issuer: [
          `https://sts.windows.net/${tenant.tenantId}/`,
          `https://login.microsoftonline.com/${tenant.tenantId}/v2.0`,
        ],
        audience: tenant.audience,
        algorithms: ['RS256'],
        label,
      })) as Record<string, unknown>
      if (typeof payload.tid !== 'string' || payload.tid.toLowerCase() !== tenant.tenantId) {
        throw failed(`${NAME}: ${label}: token's tid does not name this tenant`)
      }
      const principal = typeof payload.oid === 'string' ? payload.oid : payload.sub
      if (typeof principal !== 'string' || !GUID_RE.test(principal)) {
        throw failed(`${NAME}: ${label}: token names no principal (oid/sub is not an object id)`)
      }
      const principalId = principal.toLowerCase()
      const resource = parseMirid(payload.xms_mirid, principalId)
      const result = {
        agentId: agentId(ctx.trustDomain, NAME, tenant.tenantId, principalId),
        selectors: new Selectors(NAME)
          .add('tenant-id', tenant.tenantId)
          .add('subscription-id', resource.subscriptionId)
          .add('resource-group', resource.resourceGroup)
          .add('vm-name', resource.vmName).list,
        canReattest: prepared.allowReattest,
      }
      if (!result.canReattest) {
        await claimOnce(
          ctx,
          `${NAME}:${tenant.tenantId}:${principalId}`,
          FOREVER,
          `${NAME}: principal ${principalId} of ${label} has already attested, and a principal attests once; to let it attest again set allowReattest in nodeAttestors.azure_msi`,
        )
      }
      return { done: true, result }
    },
  }
}
