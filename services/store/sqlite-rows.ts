// Row shapes of the SQLite schema (sqlite-migrations.ts) and their mapping to store records.
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
} from './store.ts'

export interface TrustDomainRow {
  name: string
  created_at: number
  settings: string
  bundle_seq: number
}

export interface RootCaRow {
  trust_domain: string
  id: string
  cert_pem: string
  sealed_key: string
  not_before: number
  not_after: number
  created_at: number
}

export interface JwtKeyRow {
  trust_domain: string
  kid: string
  public_jwk: string
  not_after: number
  created_at: number
}

export interface EntryRow {
  trust_domain: string
  id: string
  spiffe_id: string
  parent_id: string
  selectors: string
  selector_key: string
  x509_ttl: number
  jwt_ttl: number
  dns_names: string
  admin: number
  downstream: number
  federates_with: string
  expires_at: number
  created_at: number
  updated_at: number
  revision: number
}

export interface JoinTokenRow {
  trust_domain: string
  token_hash: string
  spiffe_id: string | null
  expires_at: number
  created_at: number
}

export interface ApiTokenRow {
  id: string
  token_hash: string
  name: string
  grants: string
  created_at: number
  expires_at: number
}

export interface AuditRow {
  seq: number
  trust_domain: string
  at: number
  actor: string
  action: string
  target: string
  result: string
  status: number
  code: string | null
  request_id: string
}

export interface AgentRow {
  trust_domain: string
  spiffe_id: string
  attestor: string
  selectors: string
  serial: string
  svid_expires_at: number
  attested_at: number
  last_seen_at: number
  can_reattest: number
  banned: number
}

export function toTrustDomain(row: TrustDomainRow): TrustDomainRecord {
  return { name: row.name, createdAt: row.created_at, settings: JSON.parse(row.settings) }
}

export function toRootCa(row: RootCaRow): RootCaRecord {
  return {
    trustDomain: row.trust_domain,
    id: row.id,
    certPem: row.cert_pem,
    sealedKey: row.sealed_key,
    notBefore: row.not_before,
    notAfter: row.not_after,
    createdAt: row.created_at,
  }
}

export function toJwtKey(row: JwtKeyRow): JwtKeyRecord {
  return {
    trustDomain: row.trust_domain,
    kid: row.kid,
    publicJwk: JSON.parse(row.public_jwk),
    notAfter: row.not_after,
    createdAt: row.created_at,
  }
}

export function toEntry(row: EntryRow): EntryRecord {
  return {
    trustDomain: row.trust_domain,
    id: row.id,
    spiffeId: row.spiffe_id,
    parentId: row.parent_id,
    selectors: JSON.parse(row.selectors),
    x509Ttl: row.x509_ttl,
    jwtTtl: row.jwt_ttl,
    dnsNames: JSON.parse(row.dns_names),
    admin: row.admin === 1,
    downstream: row.downstream === 1,
    federatesWith: JSON.parse(row.federates_with),
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    revision: row.revision,
  }
}

/** Named parameters for the entries table. */
export function entryParams(entry: EntryRecord, selectorKey: string): EntryRow {
  return {
    trust_domain: entry.trustDomain,
    id: entry.id,
    spiffe_id: entry.spiffeId,
    parent_id: entry.parentId,
    selectors: JSON.stringify(entry.selectors.map((s) => ({ type: s.type, value: s.value }))),
    selector_key: selectorKey,
    x509_ttl: entry.x509Ttl,
    jwt_ttl: entry.jwtTtl,
    dns_names: JSON.stringify(entry.dnsNames),
    admin: entry.admin ? 1 : 0,
    downstream: entry.downstream ? 1 : 0,
    federates_with: JSON.stringify(entry.federatesWith),
    expires_at: entry.expiresAt,
    created_at: entry.createdAt,
    updated_at: entry.updatedAt,
    revision: entry.revision,
  }
}

export function toJoinToken(row: JoinTokenRow): JoinTokenRecord {
  const token: JoinTokenRecord = {
    trustDomain: row.trust_domain,
    tokenHash: row.token_hash,
    expiresAt: row.expires_at,
    createdAt: row.created_at,
  }
  if (row.spiffe_id !== null) token.spiffeId = row.spiffe_id
  return token
}

export function toApiToken(row: ApiTokenRow): ApiTokenRecord {
  return {
    id: row.id,
    tokenHash: row.token_hash,
    name: row.name,
    grants: JSON.parse(row.grants),
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  }
}

export function toAudit(row: AuditRow): AuditRecord {
  const record: AuditRecord = {
    seq: row.seq,
    trustDomain: row.trust_domain,
    at: row.at,
    actor: row.actor,
    action: row.action,
    target: row.target,
    result: row.result as AuditRecord['result'],
    status: row.status,
    requestId: row.request_id,
  }
  if (row.code !== null) record.code = row.code
  return record
}

export function toAgent(row: AgentRow): AgentRecord {
  return {
    trustDomain: row.trust_domain,
    spiffeId: row.spiffe_id,
    attestor: row.attestor,
    selectors: JSON.parse(row.selectors),
    serial: row.serial,
    svidExpiresAt: row.svid_expires_at,
    attestedAt: row.attested_at,
    lastSeenAt: row.last_seen_at,
    canReattest: row.can_reattest === 1,
    banned: row.banned === 1,
  }
}

export function agentParams(agent: AgentRecord): AgentRow {
  return {
    trust_domain: agent.trustDomain,
    spiffe_id: agent.spiffeId,
    attestor: agent.attestor,
    selectors: JSON.stringify(agent.selectors.map((s) => ({ type: s.type, value: s.value }))),
    serial: agent.serial,
    svid_expires_at: agent.svidExpiresAt,
    attested_at: agent.attestedAt,
    last_seen_at: agent.lastSeenAt,
    can_reattest: agent.canReattest ? 1 : 0,
    banned: agent.banned ? 1 : 0,
  }
}

export interface PolicyRow {
  trust_domain: string
  version: number
  text: string
  mode: string
  updated_at: number
  updated_by: string
}

export function toPolicy(row: PolicyRow): PolicyRecord {
  return {
    trustDomain: row.trust_domain,
    version: row.version,
    text: row.text,
    mode: row.mode as PolicyRecord['mode'],
    updatedAt: row.updated_at,
    updatedBy: row.updated_by,
  }
}

export function policyParams(p: PolicyRecord): PolicyRow {
  return {
    trust_domain: p.trustDomain,
    version: p.version,
    text: p.text,
    mode: p.mode,
    updated_at: p.updatedAt,
    updated_by: p.updatedBy,
  }
}

export interface FederationRow {
  trust_domain: string
  foreign_trust_domain: string
  bundle_endpoint_url: string
  profile: string
  endpoint_spiffe_id: string | null
  ca_bundle_pem: string | null
  bundle: string | null
  sequence: number
  refresh_hint_seconds: number
  last_refresh_at: number
  last_error: string | null
  last_error_at: number | null
  created_at: number
}

export function toFederation(row: FederationRow): FederationRecord {
  const f: FederationRecord = {
    trustDomain: row.trust_domain,
    foreignTrustDomain: row.foreign_trust_domain,
    bundleEndpointUrl: row.bundle_endpoint_url,
    profile: row.profile as FederationRecord['profile'],
    sequence: row.sequence,
    refreshHintSeconds: row.refresh_hint_seconds,
    lastRefreshAt: row.last_refresh_at,
    createdAt: row.created_at,
  }
  if (row.endpoint_spiffe_id !== null) f.endpointSpiffeId = row.endpoint_spiffe_id
  if (row.ca_bundle_pem !== null) f.caBundlePem = row.ca_bundle_pem
  if (row.bundle !== null) f.bundle = row.bundle
  if (row.last_error !== null) f.lastError = row.last_error
  if (row.last_error_at !== null) f.lastErrorAt = row.last_error_at
  return f
}

export function federationParams(f: FederationRecord): FederationRow {
  return {
    trust_domain: f.trustDomain,
    foreign_trust_domain: f.foreignTrustDomain,
    bundle_endpoint_url: f.bundleEndpointUrl,
    profile: f.profile,
    endpoint_spiffe_id: f.endpointSpiffeId ?? null,
    ca_bundle_pem: f.caBundlePem ?? null,
    bundle: f.bundle ?? null,
    sequence: f.sequence,
    refresh_hint_seconds: f.refreshHintSeconds,
    last_refresh_at: f.lastRefreshAt,
    last_error: f.lastError ?? null,
    last_error_at: f.lastErrorAt ?? null,
    created_at: f.createdAt,
  }
}
