// aws_iid: the agent presents its EC2 instance identity document with AWS's signature over it, the
// PKCS#7 form (DSA certificates), the base64 RSA-SHA256 form, or both; one verified form suffices.
// The certificates are per region: a few are built in (aws-certificates.ts), more come from the
// trust domain's configuration. An identity document never changes for an instance, so by default an
// instance attests once: a copy of the document read later cannot mint a second agent.

import { verify } from 'node:crypto'
import { type Cert, parsePemCertificates } from '../../authority/x509-chain.ts'
import { failed, invalidEvidence, quote } from '../errors.ts'
import { awsSignatureCertificates } from './aws-certificates.ts'
import {
  checkInstance,
  defaultEc2Client,
  type Ec2Api,
  type Ec2Checks,
  type Ec2ClientFactory,
} from './aws-ec2.ts'
import { CmsError, verifySignedData } from './cms.ts'
import { PreparedConfigs } from './config.ts'
import { base64Field, evidenceObject, requiredString } from './evidence.ts'
import type { NodeAttestationContext, NodeAttestationStep } from './node-attestor.ts'
import type { RegisteredAttestor } from './registry.ts'
import { claimOnce, FOREVER } from './replay.ts'
import { agentId, Selectors } from './result.ts'

export type { Ec2ClientFactory }

const NAME = 'aws_iid'
const REGION = '^[a-z0-9-]{4,32}$'
const MAX_DOCUMENT = 8 * 1024

export const awsIidConfigSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    accountAllowList: {
      type: 'array',
      minItems: 1,
      maxItems: 4096,
      items: { type: 'string', pattern: '^[0-9]{12}$' },
    },
    allowAnyAccount: { type: 'boolean' },
    regionCertificates: {
      type: 'object',
      maxProperties: 128,
      propertyNames: { pattern: REGION },
      additionalProperties: { type: 'string', minLength: 1, maxLength: 200_000 },
    },
    extraRootsPem: { type: 'string', minLength: 1, maxLength: 1_000_000 },
    useBuiltInCertificates: { type: 'boolean' },
    allowReattest: { type: 'boolean' },
    ec2: {
      type: 'object',
      additionalProperties: false,
      properties: {
        endpoint: { type: 'string', pattern: '^https?://[^\\s]+$', maxLength: 2048 },
        region: { type: 'string', pattern: REGION },
        requireRunning: { type: 'boolean' },
        requireTags: {
          type: 'object',
          maxProperties: 50,
          propertyNames: { minLength: 1, maxLength: 128 },
          additionalProperties: { type: 'string', maxLength: 256 },
        },
        requireSecurityGroups: {
          type: 'array',
          maxItems: 50,
          items: { type: 'string', pattern: '^sg-[0-9a-f]{8,17}$' },
        },
        requireIamRole: {
          type: 'string',
          pattern: '^arn:aws[a-z-]*:iam::[0-9]{12}:instance-profile/.+$',
          maxLength: 2048,
        },
      },
    },
  },
}

export interface AwsIidConfig {
  accountAllowList?: string[]
  allowAnyAccount?: boolean
  regionCertificates?: Record<string, string>
  extraRootsPem?: string
  useBuiltInCertificates?: boolean
  allowReattest?: boolean
  ec2?: Ec2Checks
}

interface Prepared {
  config: AwsIidConfig
  accounts: Set<string> | undefined
  regionCerts: Map<string, Cert[]>
  extraRoots: Cert[]
}

let builtIn: Map<string, Cert[]> | undefined
function builtInCertificates(): Map<string, Cert[]> {
  builtIn ??= new Map(
    Object.entries(awsSignatureCertificates).map(([region, pem]) => [
      region,
      parsePemCertificates(pem, region),
    ]),
  )
  return builtIn
}

function prepare(config: AwsIidConfig): Prepared {
  if (!config.accountAllowList && config.allowAnyAccount !== true) {
    throw new Error(
      'set accountAllowList (the AWS accounts whose instances may attest), or allowAnyAccount: true to accept an instance of any account',
    )
  }
  const regionCerts = new Map<string, Cert[]>()
  for (const [region, pem] of Object.entries(config.regionCertificates ?? {})) {
    regionCerts.set(region, parsePemCertificates(pem, `regionCertificates.${region}`))
  }
  return {
    config,
    accounts: config.accountAllowList ? new Set(config.accountAllowList) : undefined,
    regionCerts,
    extraRoots: config.extraRootsPem ? parsePemCertificates(config.extraRootsPem, 'extraRootsPem') : [],
  }
}

function trustedFor(prepared: Prepared, region: string): Cert[] {
  const builtInCerts =
    prepared.config.useBuiltInCertificates === false ? [] : (builtInCertificates().get(region) ?? [])
  return [...builtInCerts, ...(prepared.regionCerts.get(region) ?? []), ...prepared.extraRoots]
}

interface IdentityDocument {
  accountId: string
  region: string
  instanceId: string
  availabilityZone: string
}

function parseDocument(text: string): Record<string, unknown> {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw invalidEvidence(NAME, 'field document is not JSON')
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw invalidEvidence(NAME, 'field document is not a JSON object')
  }
  return doc as Record<string, unknown>
}

function identity(doc: Record<string, unknown>): IdentityDocument {
  const field = (key: string, pattern: RegExp): string => {
    const v = doc[key]
    if (typeof v !== 'string' || !pattern.test(v)) {
      throw failed(`${NAME}: the signed identity document has no valid ${key}`)
    }
    return v
  }
  return {
    accountId: field('accountId', /^[0-9]{12}$/),
    region: field('region', new RegExp(REGION)),
    instanceId: field('instanceId', /^i-[0-9a-f]{8,17}$/),
    availabilityZone: field('availabilityZone', /^[a-z0-9-]{4,40}$/),
  }
}

/** Returns the verified document text, or throws naming why each presented form failed. */
function verifyDocument(
  obj: Record<string, unknown>,
  document: string,
  trusted: Cert[],
  region: string,
  now: number,
): string {
  const problems: string[] = []
  if (trusted.length === 0) {
    throw failed(
      `${NAME}: no AWS certificate is configured for region ${quote(region)}; add it to nodeAttestors.aws_iid.regionCertificates`,
    )
  }
  if (obj.pkcs7 !== undefined) {
    const der = base64Field(NAME, obj, 'pkcs7', 16 * 1024)
    try {
      const { content } = verifySignedData(der, trusted, now)
      if (content.toString('utf8').trim() !== document.trim()) {
        problems.push('the PKCS#7 signature is over another document than the one presented')
      } else {
        return content.toString('utf8')
      }
    } catch (err) {
      if (!(err instanceof CmsError)) throw err
      problems.push(`PKCS#7 ${err.message}`)
    }
  }
  if (obj.signature !== undefined) {
    const signature = base64Field(NAME, obj, 'signature', 4 * 1024)
    const data = Buffer.from(document, 'utf8')
    const rsa = trusted.filter((c) => c.node.publicKey.asymmetricKeyType === 'rsa')
    const ok = rsa.some((c) => {
      try {
        return verify('sha256', data, c.node.publicKey, signature)
      } catch {
        return false
      }
    })
    if (ok) return document
    problems.push(
      rsa.length === 0
        ? `no RSA certificate is configured for region ${region}`
        : 'the RSA-SHA256 signature does not verify with any certificate of the region',
    )
  }
  throw failed(`${NAME}: identity document of region ${region} is not signed by AWS: ${problems.join('; ')}`)
}

export function createAwsIidAttestor(deps: { ec2Client?: Ec2ClientFactory } = {}): RegisteredAttestor {
  const configs = new PreparedConfigs(NAME, awsIidConfigSchema, prepare)
  const makeClient = deps.ec2Client ?? defaultEc2Client
  const clients = new Map<string, Ec2Api>()
  const ec2For = (region: string, endpoint: string | undefined): Ec2Api => {
    const key = `${region} ${endpoint ?? ''}`
    let client = clients.get(key)
    if (!client) {
      client = makeClient({ region, ...(endpoint ? { endpoint } : {}) })
      clients.set(key, client)
    }
    return client
  }
  return {
    name: NAME,
    configSchema: awsIidConfigSchema,
    validateConfig: (raw) => void configs.validate(raw),
    async attest(
      evidence: unknown,
      ctx: NodeAttestationContext,
      round?: unknown,
    ): Promise<NodeAttestationStep> {
      if (round !== undefined) throw new TypeError('aws_iid has a single round')
      const prepared = configs.get(ctx.trustDomain, ctx.config)
      const obj = evidenceObject(NAME, evidence, ['document', 'pkcs7', 'signature'])
      const document = requiredString(NAME, obj, 'document', { max: MAX_DOCUMENT })
      if (obj.pkcs7 === undefined && obj.signature === undefined) {
        throw invalidEvidence(NAME, 'has neither pkcs7 nor signature; the agent sends at least one')
      }
      // Unverified, only to choose the region's certificates; the verified copy must say the same.
      const claimedRegion = parseDocument(document).region
      if (typeof claimedRegion !== 'string' || !new RegExp(REGION).test(claimedRegion)) {
        throw invalidEvidence(NAME, 'field document names no valid region')
      }
      const verified = verifyDocument(
        obj,
        document,
        trustedFor(prepared, claimedRegion),
        claimedRegion,
        ctx.clock.now(),
      )
      const doc = identity(parseDocument(verified))
      if (doc.region !== claimedRegion)
        throw failed(`${NAME}: the signed document names region ${doc.region}`)
      const instance = `instance ${doc.instanceId} (account ${doc.accountId}, ${doc.region})`
      if (prepared.accounts && !prepared.accounts.has(doc.accountId)) {
        throw failed(
          `${NAME}: ${instance} may not attest: account ${doc.accountId} is not in accountAllowList`,
        )
      }
      const selectors = new Selectors(NAME)
        .add('account', doc.accountId)
        .add('region', doc.region)
        .add('instance-id', doc.instanceId)
        .add('az', doc.availabilityZone)
      const ec2 = prepared.config.ec2
      if (ec2) {
        const client = ec2For(ec2.region ?? doc.region, ec2.endpoint)
        const found = await checkInstance(client, doc, ec2)
        // A tag key with ':' would make TYPE:KEY:VALUE ambiguous, so such tags give no selector.
        for (const tag of found.tags)
          if (!tag.key.includes(':')) selectors.add('tag', `${tag.key}:${tag.value}`)
        for (const group of found.securityGroups) selectors.add('sg', group)
        selectors.add('iamrole', found.iamInstanceProfile)
      }
      const canReattest = prepared.config.allowReattest === true
      const result = {
        agentId: agentId(ctx.trustDomain, NAME, doc.accountId, doc.region, doc.instanceId),
        selectors: selectors.list,
        canReattest,
      }
      if (!canReattest) {
        await claimOnce(
          ctx,
          `${NAME}:${doc.instanceId}`,
          FOREVER,
          `${NAME}: ${instance} has already attested, and an instance attests once; to let it attest again set allowReattest in nodeAttestors.aws_iid`,
        )
      }
      return { done: true, result }
    },
  }
}
