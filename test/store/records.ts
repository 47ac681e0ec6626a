// Record factories for the store tests (conformance and durability).
import type { FlowRecord } from '../../services/flows/flow.ts'
import type {
  AgentRecord,
  ApiTokenRecord,
  AuditRecord,
  EntryRecord,
  FederationRecord,
  JoinTokenRecord,
  JwtKeyRecord,
  PolicyRecord,
  RootCaRecord,
  TrustDomainRecord,
  TrustDomainSettings,
} from '../../services/store/store.ts'

export const settings: TrustDomainSettings = {
  keyType: 'ec-p256',
  caTtl: 31_536_000,
  x509DefaultTtl: 3600,
  x509MaxTtl: 86_400,
  jwtDefaultTtl: 300,
  jwtMaxTtl: 3600,
  policyMode: 'baseline',
}

export function trustDomain(name: string, createdAt = 1_000): TrustDomainRecord {
  return { name, createdAt, settings: { ...settings } }
}

export function rootCa(td: string, id = 'root-1', createdAt = 1_000): RootCaRecord {
  return {
    trustDomain: td,
    id,
    certPem: `-----BEGIN CERTIFICATE-----\n${td}/${id}\n-----END CERTIFICATE-----\n`,
    sealedKey: `sealed:${td}:${id}`,
    notBefore: createdAt,
    notAfter: createdAt + 31_536_000_000,
    createdAt,
  }
}

export function jwtKey(td: string, kid: string, notAfter: number, createdAt = 1_000): JwtKeyRecord {
  return {
    trustDomain: td,
    kid,
    publicJwk: {
      kty: 'EC',
      crv: 'P-256',
      x: `x-${kid}`,
      y: `y-${kid}`,
      kid,
      use: 'jwt-svid',
      ext: { n: [1, 2] },
    },
    notAfter,
    createdAt,
  }
}

export function entry(td: string, id: string, overrides: Partial<EntryRecord> = {}): EntryRecord {
  return {
    trustDomain: td,
    id,
    spiffeId: `spiffe://${td}/workload/${id}`,
    parentId: `spiffe://${td}/agent/node-1`,
    selectors: [
      { type: 'k8s', value: 'ns:default' },
      { type: 'k8s', value: `sa:${id}` },
    ],
    x509Ttl: 3600,
    jwtTtl: 300,
    dnsNames: [`${id}.example.test`],
    admin: false,
    downstream: false,
    federatesWith: [],
    expiresAt: 0,
    createdAt: 1_000,
    updatedAt: 1_000,
    revision: 1,
    ...overrides,
  }
}

export function joinToken(
  td: string,
  tokenHash: string,
  expiresAt: number,
  spiffeId?: string,
): JoinTokenRecord {
  const token: JoinTokenRecord = { trustDomain: td, tokenHash, expiresAt, createdAt: 1_000 }
  if (spiffeId !== undefined) token.spiffeId = spiffeId
  return token
}

export function apiToken(id: string, tokenHash: string, createdAt = 1_000): ApiTokenRecord {
  return {
    id,
    tokenHash,
    name: `token ${id}`,
    grants: [
      { trustDomain: '*', role: 'viewer' },
      { trustDomain: 'a.test', role: 'admin' },
    ],
    createdAt,
    expiresAt: 0,
  }
}

export function audit(td: string, n: number, code?: string): Omit<AuditRecord, 'seq'> {
  const record: Omit<AuditRecord, 'seq'> = {
    trustDomain: td,
    at: 1_000 + n,
    actor: `token:${n % 3}`,
    action: 'entry.create',
    target: `entry/${n}`,
    result: code ? 'error' : 'ok',
    status: code ? 409 : 201,
    requestId: `req-${n}`,
  }
  if (code !== undefined) record.code = code
  return record
}

export function agent(td: string, node: string, overrides: Partial<AgentRecord> = {}): AgentRecord {
  return {
    trustDomain: td,
    spiffeId: `spiffe://${td}/sigil/agent/join_token/${node}`,
    attestor: 'join_token',
    selectors: [
      { type: 'join_token', value: node },
      { type: 'k8s_psat', value: 'cluster:c1' },
    ],
    serial: `0a${Buffer.from(node).toString('hex')}`,
    svidExpiresAt: 5_000_000,
    attestedAt: 1_000,
    lastSeenAt: 1_000,
    canReattest: false,
    banned: false,
    ...overrides,
  }
}

export function policy(td: string, version: number, overrides: Partial<PolicyRecord> = {}): PolicyRecord {
  return {
    trustDomain: td,
    version,
    text: `# version ${version}\nmode: baseline\n`,
    mode: 'baseline',
    updatedAt: 1_000 + version,
    updatedBy: `token:t${version} (admin)`,
    ...overrides,
  }
}

export function flow(td: string, id: string, start: number, overrides: Partial<FlowRecord> = {}): FlowRecord {
  return {
    id,
    side: 'egress',
    start,
    durationMs: 12,
    source: {
      spiffeId: `spiffe://${td}/web`,
      pid: 42,
      path: '/usr/bin/web',
      sha256: 'ab'.repeat(32),
      selectors: ['unix:uid:1000', 'k8s:ns:prod'],
      agent: `spiffe://${td}/sigil/agent/join_token/n1`,
    },
    destination: { spiffeId: `spiffe://${td}/db`, service: 'db', port: 5432 },
    bytesOut: 100,
    bytesIn: 2_000,
    verdict: 'allowed',
    rule: 'web-to-db',
    reason: 'allow rule web-to-db',
    mode: 'baseline',
    policyVersion: 1,
    ...overrides,
  }
}

export function federation(
  td: string,
  foreign: string,
  overrides: Partial<FederationRecord> = {},
): FederationRecord {
  return {
    trustDomain: td,
    foreignTrustDomain: foreign,
    bundleEndpointUrl: `https://${foreign}.example:8443/v1/federation/${foreign}/bundle`,
    profile: 'https_web',
    caBundlePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
    sequence: 0,
    refreshHintSeconds: 300,
    lastRefreshAt: 0,
    createdAt: 1_000,
    ...overrides,
  }
}

/** A bundle text as a federation stores it (its content only matters for equality). */
export function bundleText(sequence: number, marker = 'k'): string {
  return JSON.stringify({ keys: [{ use: 'jwt-svid', kid: marker }], spiffe_sequence: sequence })
}
