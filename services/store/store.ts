// The storage interface of the trust service. Two implementations (SQLite, Redis) satisfy it and share
// one conformance suite (test/store/conformance.ts). Domain services receive a Store; routes never do.
//
// Invariants every implementation must keep:
// - Every record except API tokens and server metadata belongs to exactly one trust domain, and every
//   read takes the trust domain as a key: there is no query that crosses tenants by accident.
// - Atomic operations (single-use join tokens, sequence numbers, uniqueness) are atomic in the store
//   itself (a SQLite transaction, a Redis MULTI or Lua script), never read-then-write in the caller.
// - A write is acknowledged only once it is durable against a crash of this process.
// - Times are milliseconds since the Unix epoch; TTLs are seconds.

import type { FlowRecord, FlowSide, FlowVerdict } from '../flows/flow.ts'

export type KeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072'

export interface TrustDomainSettings {
  /** Key type of the root CA (and of intermediates signed under it). */
  keyType: KeyType
  /** Lifetime of the root CA certificate, seconds. */
  caTtl: number
  x509DefaultTtl: number
  x509MaxTtl: number
  jwtDefaultTtl: number
  jwtMaxTtl: number
  /** Policy mode (used by the data plane). */
  policyMode: 'baseline' | 'explicit'
  /** Per node attestor configuration (aws_iid, k8s_psat, ...), validated by each attestor's schema. */
  nodeAttestors?: Record<string, unknown>
}

export interface TrustDomainRecord {
  name: string
  createdAt: number
  settings: TrustDomainSettings
}

/** A root CA of a trust domain. Its private key is sealed by the KeyManager; the store never sees it. */
export interface RootCaRecord {
  trustDomain: string
  id: string
  certPem: string
  sealedKey: string
  notBefore: number
  notAfter: number
  createdAt: number
}

/** The public half of a JWT signing key, published in the bundle. The private half lives in one process. */
export interface JwtKeyRecord {
  trustDomain: string
  kid: string
  publicJwk: Record<string, unknown>
  notAfter: number
  createdAt: number
}

export interface Selector {
  type: string
  value: string
}

export interface EntryRecord {
  trustDomain: string
  id: string
  spiffeId: string
  parentId: string
  selectors: Selector[]
  x509Ttl: number
  jwtTtl: number
  dnsNames: string[]
  admin: boolean
  downstream: boolean
  federatesWith: string[]
  /** ms since epoch; 0 = never */
  expiresAt: number
  createdAt: number
  updatedAt: number
  /** Incremented on every change of this entry; agents use it to detect changes. */
  revision: number
}

export type EntryPatch = Partial<
  Pick<
    EntryRecord,
    | 'spiffeId'
    | 'parentId'
    | 'selectors'
    | 'x509Ttl'
    | 'jwtTtl'
    | 'dnsNames'
    | 'admin'
    | 'downstream'
    | 'federatesWith'
    | 'expiresAt'
  >
>

export interface EntryFilter {
  spiffeId?: string
  parentId?: string
  /** Entries that contain this selector. */
  selector?: Selector
}

export interface JoinTokenRecord {
  trustDomain: string
  /** sha256 of the token, hex. The token itself is never stored. */
  tokenHash: string
  /** The agent SPIFFE ID the token grants, if fixed at creation. */
  spiffeId?: string
  expiresAt: number
  createdAt: number
}

export type ConsumeJoinTokenResult =
  | { ok: true; token: JoinTokenRecord }
  | { ok: false; reason: 'not_found' | 'expired' }

export type Role = 'admin' | 'viewer'

export interface Grant {
  /** A trust domain name, or '*' for every trust domain (and the right to create new ones). */
  trustDomain: string
  role: Role
}

export interface ApiTokenRecord {
  id: string
  /** sha256 of the token, hex. */
  tokenHash: string
  name: string
  grants: Grant[]
  createdAt: number
  /** 0 = never */
  expiresAt: number
}

export interface AuditRecord {
  /** Assigned by the store, strictly increasing per store. */
  seq: number
  /** '' for installation-wide actions (creating API tokens, say). */
  trustDomain: string
  at: number
  actor: string
  action: string
  target: string
  result: 'ok' | 'error'
  status: number
  code?: string
  requestId: string
}

export interface IssuanceRecord {
  trustDomain: string
  kind: 'x509' | 'jwt'
  serial: string
  spiffeId: string
  issuedAt: number
  expiresAt: number
}

/** An attested agent (node). Its SPIFFE ID is spiffe://TD/sigil/agent/<attestor>/<attestor-specific id>. */
export interface AgentRecord {
  trustDomain: string
  spiffeId: string
  attestor: string
  /** Node selectors from attestation (aws_iid:region:..., k8s_psat:cluster:..., ...). */
  selectors: Selector[]
  /** Serial (hex) and expiry of the agent's current X509-SVID; a renewal must present this one. */
  serial: string
  svidExpiresAt: number
  attestedAt: number
  lastSeenAt: number
  /** Whether the attestor allows this node to attest again (join tokens and IIDs without reuse do not). */
  canReattest: boolean
  banned: boolean
}

export type AgentAttestOutcome = 'created' | 'reattested' | 'banned' | 'exists'

/** A change other processes (and agents' push streams) must hear about. */
export interface ChangeEvent {
  trustDomain: string
  kind: 'entry' | 'bundle' | 'agent' | 'trust-domain' | 'policy'
  id?: string
}

/** One version of a trust domain's network policy. Versions count 1, 2, 3, ... per trust domain. */
export interface PolicyRecord {
  trustDomain: string
  version: number
  /** The policy file as given, or the YAML generated from the API's JSON form. */
  text: string
  /** The mode the text says (stored beside it, so a reader need not parse the text). */
  mode: 'baseline' | 'explicit'
  updatedAt: number
  /** Who set it, as the audit log names actors. */
  updatedBy: string
}

/** The newest policy versions kept per trust domain; older ones are dropped on write. */
export const POLICY_HISTORY_LIMIT = 100

export type FederationProfile = 'https_web' | 'https_spiffe'

/**
 * A trust domain's federation with a foreign one: where the foreign bundle is fetched from, how the
 * endpoint is authenticated, and the last good bundle. Keyed by (trustDomain, foreignTrustDomain).
 */
export interface FederationRecord {
  trustDomain: string
  foreignTrustDomain: string
  bundleEndpointUrl: string
  profile: FederationProfile
  /** https_spiffe: the SPIFFE ID the endpoint's server certificate must carry. */
  endpointSpiffeId?: string
  /** https_web: extra roots (PEM) trusted for the endpoint's web certificate, beside the system's. */
  caBundlePem?: string
  /** The last good foreign bundle, SPIFFE bundle JSON; absent until the first good fetch. */
  bundle?: string
  /** The bundle's spiffe_sequence (0 when it had none). */
  sequence: number
  /** The bundle's spiffe_refresh_hint (seconds), or the default. */
  refreshHintSeconds: number
  /** Last successful refresh (ms); 0 = never. */
  lastRefreshAt: number
  /** The last failed refresh since then, for the operator; cleared by a good one. */
  lastError?: string
  lastErrorAt?: number
  createdAt: number
}

/** A newly fetched bundle; putFederationBundle stores it unless it is older than the stored one. */
export interface FederationBundleUpdate {
  bundle: string
  sequence: number
  refreshHintSeconds: number
  refreshedAt: number
}

/**
 * stored: a new bundle (a 'bundle' change is published); unchanged: the same bundle (only the refresh
 * time and hint are written); older: its sequence is below the stored one (nothing written); not_found.
 */
export type FederationBundleOutcome = 'stored' | 'unchanged' | 'older' | 'not_found'

/**
 * A tunnel through the broker (services/broker): a named way to reach one service behind one agent from
 * anywhere the broker is reachable. Keyed by (trustDomain, name).
 */
export interface TunnelRecord {
  trustDomain: string
  name: string
  /** The service's identity: the far side must prove it inside the relayed stream. */
  spiffeId: string
  /** SPIFFE ID of the agent that offers the service. */
  agent: string
  /** The service's name in that agent's proxy configuration. */
  service: string
  /** The service's port, when declared (lets the broker apply port-specific rules). */
  port?: number
  createdAt: number
}

export interface FlowQuery {
  /** Only flows with start >= since (ms), and start <= until. */
  since?: number
  until?: number
  limit: number
  verdict?: FlowVerdict
  /** Flows whose source or destination has this SPIFFE ID. */
  spiffeId?: string
  side?: FlowSide
}

export interface FlowRetention {
  /** Flows that started before now - maxAgeMs are dropped. */
  maxAgeMs: number
  /** At most this many flows per trust domain; the oldest (by start) go first. */
  maxCount: number
}

export interface AuditQuery {
  limit: number
  /** Only records with seq < before. */
  before?: number
}

export interface Store {
  readonly kind: 'sqlite' | 'redis'
  /** Creates or upgrades the schema; idempotent and safe to run from several processes at once. */
  migrate(): Promise<void>
  /** Throws when the store cannot serve requests. */
  ping(): Promise<void>
  close(): Promise<void>

  // Trust domains. Creation stores the domain and its first root CA atomically.
  createTrustDomain(td: TrustDomainRecord, root: RootCaRecord): Promise<void>
  getTrustDomain(name: string): Promise<TrustDomainRecord | undefined>
  listTrustDomains(): Promise<TrustDomainRecord[]>
  updateTrustDomainSettings(
    name: string,
    settings: TrustDomainSettings,
  ): Promise<TrustDomainRecord | undefined>
  /** Deletes the domain and everything that belongs to it. Returns false when it did not exist. */
  deleteTrustDomain(name: string): Promise<boolean>

  // Authority. Every change to what the bundle contains increments the domain's bundle sequence.
  listRootCas(trustDomain: string): Promise<RootCaRecord[]>
  addRootCa(root: RootCaRecord): Promise<number>
  publishJwtKey(key: JwtKeyRecord): Promise<number>
  listJwtKeys(trustDomain: string): Promise<JwtKeyRecord[]>
  /** Removes keys with notAfter <= now; returns the new sequence when anything was removed. */
  pruneJwtKeys(trustDomain: string, now: number): Promise<number | undefined>
  getBundleSequence(trustDomain: string): Promise<number>

  // Registration entries. Uniqueness: (trustDomain, spiffeId, parentId, sorted selectors).
  createEntry(entry: EntryRecord): Promise<void>
  getEntry(trustDomain: string, id: string): Promise<EntryRecord | undefined>
  listEntries(trustDomain: string, filter?: EntryFilter): Promise<EntryRecord[]>
  /** Applies the patch, increments revision and sets updatedAt; undefined when not found. */
  updateEntry(
    trustDomain: string,
    id: string,
    patch: EntryPatch,
    now: number,
  ): Promise<EntryRecord | undefined>
  deleteEntry(trustDomain: string, id: string): Promise<boolean>

  // Join tokens: single use. consume is atomic: of two concurrent calls, exactly one gets ok.
  createJoinToken(token: JoinTokenRecord): Promise<void>
  consumeJoinToken(trustDomain: string, tokenHash: string, now: number): Promise<ConsumeJoinTokenResult>
  listJoinTokens(trustDomain: string): Promise<JoinTokenRecord[]>
  deleteJoinToken(trustDomain: string, tokenHash: string): Promise<boolean>

  // API (admin) tokens; installation-wide.
  createApiToken(token: ApiTokenRecord): Promise<void>
  findApiTokenByHash(tokenHash: string): Promise<ApiTokenRecord | undefined>
  listApiTokens(): Promise<ApiTokenRecord[]>
  deleteApiToken(id: string): Promise<boolean>

  // Audit log: append-only.
  appendAudit(record: Omit<AuditRecord, 'seq'>): Promise<number>
  /** Newest first. */
  listAudit(trustDomain: string, query: AuditQuery): Promise<AuditRecord[]>

  // Issuance records (what was signed, for metrics and forensics; never the certificate's key).
  recordIssuances(records: IssuanceRecord[]): Promise<void>
  countIssuances(trustDomain: string, since: number): Promise<number>

  // Agents. attestAgent is atomic: a banned agent is refused ('banned'); an existing one is replaced only
  // when it may re-attest ('reattested'), otherwise 'exists'; a new one is stored ('created').
  attestAgent(agent: AgentRecord): Promise<AgentAttestOutcome>
  getAgent(trustDomain: string, spiffeId: string): Promise<AgentRecord | undefined>
  listAgents(trustDomain: string): Promise<AgentRecord[]>
  /** Records a renewed agent SVID, only if `previousSerial` is still the current one (compare-and-set). */
  renewAgentSvid(
    trustDomain: string,
    spiffeId: string,
    previousSerial: string,
    next: { serial: string; svidExpiresAt: number; lastSeenAt: number },
  ): Promise<boolean>
  touchAgent(trustDomain: string, spiffeId: string, lastSeenAt: number): Promise<void>
  /** Bans an agent: it keeps its record, cannot renew, and cannot attest again. False if unknown. */
  banAgent(trustDomain: string, spiffeId: string): Promise<boolean>
  /** Deletes an agent's record (it may attest again). False if unknown. */
  evictAgent(trustDomain: string, spiffeId: string): Promise<boolean>

  // Network policy, versioned. putPolicy is a compare-and-set: it stores `record` only when the current
  // version is `expectedVersion` (0: none yet), and record.version must be expectedVersion + 1 (else
  // TypeError). Of concurrent writers with the same expectedVersion exactly one gets true. It keeps the
  // newest POLICY_HISTORY_LIMIT versions and publishes a 'policy' change.
  getPolicy(trustDomain: string): Promise<PolicyRecord | undefined>
  putPolicy(record: PolicyRecord, expectedVersion: number): Promise<boolean>
  /** Newest first. */
  listPolicyVersions(trustDomain: string, limit: number): Promise<PolicyRecord[]>

  // Flow reports. A flow is identified by (id, side): a record sent again replaces the earlier one.
  // appendFlows stores the batch and prunes the trust domain's flows by age and count, atomically.
  appendFlows(
    trustDomain: string,
    records: FlowRecord[],
    retention: FlowRetention,
    now: number,
  ): Promise<void>
  /** Newest first: by start, then by id and side (descending), the same order in every store. */
  listFlows(trustDomain: string, query: FlowQuery): Promise<FlowRecord[]>

  // Tunnels, per trust domain, keyed by name.
  /** Refused with StoreConflictError when one with that name exists. */
  createTunnel(record: TunnelRecord): Promise<void>
  getTunnel(trustDomain: string, name: string): Promise<TunnelRecord | undefined>
  /** Sorted by name. */
  listTunnels(trustDomain: string): Promise<TunnelRecord[]>
  deleteTunnel(trustDomain: string, name: string): Promise<boolean>

  // Federations, per trust domain, keyed by the foreign trust domain. Creating, deleting and storing a new
  // bundle publish a 'bundle' change of the (local) trust domain, with the foreign name as id.
  /** Refused with StoreConflictError when one with that foreign trust domain exists. */
  createFederation(record: FederationRecord): Promise<void>
  getFederation(trustDomain: string, foreignTrustDomain: string): Promise<FederationRecord | undefined>
  /** Sorted by foreign trust domain. */
  listFederations(trustDomain: string): Promise<FederationRecord[]>
  /**
   * Atomically: refuses an update whose sequence is below the stored bundle's ('older'); otherwise
   * stores it, sets lastRefreshAt and the hint, and clears lastError.
   */
  putFederationBundle(
    trustDomain: string,
    foreignTrustDomain: string,
    update: FederationBundleUpdate,
  ): Promise<FederationBundleOutcome>
  /** Records a failed refresh (the bundle stays). False when the federation does not exist. */
  recordFederationError(
    trustDomain: string,
    foreignTrustDomain: string,
    message: string,
    at: number,
  ): Promise<boolean>
  deleteFederation(trustDomain: string, foreignTrustDomain: string): Promise<boolean>

  /** Atomic single use of an opaque key until expiresAt (attestation replay protection). */
  claimOnce(trustDomain: string, key: string, expiresAt: number, now: number): Promise<boolean>

  /**
   * Change notifications across every process sharing the store (Redis pub/sub; in-process for
   * SQLite). Every mutation of entries, bundles (federated ones included), agents, trust domains and
   * policies publishes one.
   */
  watch(listener: (event: ChangeEvent) => void): () => void

  // Installation metadata (the sealed service CA, say). setMetaIfAbsent is atomic.
  getMeta(key: string): Promise<string | undefined>
  setMetaIfAbsent(key: string, value: string): Promise<boolean>
}

/** Thrown by a store when a uniqueness constraint is violated. */
export class StoreConflictError extends Error {
  readonly code = 'STORE_CONFLICT'
  constructor(
    message: string,
    readonly resource: string,
  ) {
    super(message)
    this.name = 'StoreConflictError'
  }
}

/** Thrown by a store when a record refers to a trust domain that does not exist. */
export class StoreMissingTrustDomainError extends Error {
  readonly code = 'STORE_MISSING_TRUST_DOMAIN'
  constructor(readonly trustDomain: string) {
    super(`trust domain ${trustDomain} does not exist`)
    this.name = 'StoreMissingTrustDomainError'
  }
}
