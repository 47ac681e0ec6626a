import Database from 'better-sqlite3'
import type { FlowRecord } from '../flows/flow.ts'
import {
  applyPatch,
  canonicalSelectors,
  checkFederationBundleUpdate,
  checkFlowRetention,
  checkPolicyWrite,
  federationBundleOutcome,
  flowPruneCutoff,
  issuancePruneCutoff,
  patchEntries,
  tunnelJson,
} from './canonical.ts'
import { ChangeListeners, changeEvent } from './events.ts'
import { applyMigrations } from './sqlite-migrations.ts'
import {
  type AgentRow,
  type ApiTokenRow,
  type AuditRow,
  agentParams,
  type EntryRow,
  entryParams,
  type FederationRow,
  federationParams,
  type JoinTokenRow,
  type JwtKeyRow,
  type PolicyRow,
  policyParams,
  type RootCaRow,
  type TrustDomainRow,
  toAgent,
  toApiToken,
  toAudit,
  toEntry,
  toFederation,
  toJoinToken,
  toJwtKey,
  toPolicy,
  toRootCa,
  toTrustDomain,
} from './sqlite-rows.ts'
import {
  type AgentAttestOutcome,
  type AgentRecord,
  type ApiTokenRecord,
  type AuditQuery,
  type AuditRecord,
  type ChangeEvent,
  type ConsumeJoinTokenResult,
  type EntryFilter,
  type EntryPatch,
  type EntryRecord,
  type FederationBundleOutcome,
  type FederationBundleUpdate,
  type FederationRecord,
  type FlowQuery,
  type FlowRetention,
  type IssuanceRecord,
  type JoinTokenRecord,
  type JwtKeyRecord,
  POLICY_HISTORY_LIMIT,
  type PolicyRecord,
  type RootCaRecord,
  type Store,
  StoreConflictError,
  StoreMissingTrustDomainError,
  type TrustDomainRecord,
  type TrustDomainSettings,
  type TunnelRecord,
} from './store.ts'

type Db = Database.Database

function prepareStatements(db: Db) {
  return {
    tdExists: db.prepare<[string], number>('SELECT 1 FROM trust_domains WHERE name = ?').pluck(),
    tdInsert: db.prepare(
      'INSERT INTO trust_domains (name, created_at, settings, bundle_seq) VALUES (?, ?, ?, 1)',
    ),
    tdGet: db.prepare<[string], TrustDomainRow>('SELECT * FROM trust_domains WHERE name = ?'),
    tdList: db.prepare<[], TrustDomainRow>('SELECT * FROM trust_domains ORDER BY name'),
    tdUpdateSettings: db.prepare<[string, string], TrustDomainRow>(
      'UPDATE trust_domains SET settings = ? WHERE name = ? RETURNING *',
    ),
    tdDelete: db.prepare<[string]>('DELETE FROM trust_domains WHERE name = ?'),
    tdBumpSeq: db
      .prepare<[string], number>(
        'UPDATE trust_domains SET bundle_seq = bundle_seq + 1 WHERE name = ? RETURNING bundle_seq',
      )
      .pluck(),
    tdSeq: db.prepare<[string], number>('SELECT bundle_seq FROM trust_domains WHERE name = ?').pluck(),

    rootInsert: db.prepare<[RootCaRow]>(
      `INSERT INTO root_cas (trust_domain, id, cert_pem, sealed_key, not_before, not_after, created_at)
       VALUES (@trust_domain, @id, @cert_pem, @sealed_key, @not_before, @not_after, @created_at)`,
    ),
    rootList: db.prepare<[string], RootCaRow>(
      'SELECT * FROM root_cas WHERE trust_domain = ? ORDER BY created_at, id',
    ),

    jwtInsert: db.prepare<[JwtKeyRow]>(
      `INSERT INTO jwt_keys (trust_domain, kid, public_jwk, not_after, created_at)
       VALUES (@trust_domain, @kid, @public_jwk, @not_after, @created_at)`,
    ),
    jwtList: db.prepare<[string], JwtKeyRow>(
      'SELECT * FROM jwt_keys WHERE trust_domain = ? ORDER BY created_at, kid',
    ),
    jwtPrune: db.prepare<[string, number]>('DELETE FROM jwt_keys WHERE trust_domain = ? AND not_after <= ?'),

    entryInsert: db.prepare<[EntryRow]>(
      `INSERT INTO entries (trust_domain, id, spiffe_id, parent_id, selectors, selector_key, x509_ttl, jwt_ttl,
         dns_names, admin, downstream, federates_with, expires_at, created_at, updated_at, revision)
       VALUES (@trust_domain, @id, @spiffe_id, @parent_id, @selectors, @selector_key, @x509_ttl, @jwt_ttl,
         @dns_names, @admin, @downstream, @federates_with, @expires_at, @created_at, @updated_at, @revision)`,
    ),
    entryUpdate: db.prepare<[EntryRow]>(
      `UPDATE entries SET spiffe_id = @spiffe_id, parent_id = @parent_id, selectors = @selectors,
         selector_key = @selector_key, x509_ttl = @x509_ttl, jwt_ttl = @jwt_ttl, dns_names = @dns_names,
         admin = @admin, downstream = @downstream, federates_with = @federates_with, expires_at = @expires_at,
         updated_at = @updated_at, revision = @revision
       WHERE trust_domain = @trust_domain AND id = @id`,
    ),
    entryGet: db.prepare<[string, string], EntryRow>(
      'SELECT * FROM entries WHERE trust_domain = ? AND id = ?',
    ),
    entryDelete: db.prepare<[string, string]>('DELETE FROM entries WHERE trust_domain = ? AND id = ?'),
    selectorInsert: db.prepare<[string, string, string, string]>(
      'INSERT OR IGNORE INTO entry_selectors (trust_domain, entry_id, type, value) VALUES (?, ?, ?, ?)',
    ),
    selectorClear: db.prepare<[string, string]>(
      'DELETE FROM entry_selectors WHERE trust_domain = ? AND entry_id = ?',
    ),

    tokenInsert: db.prepare<[JoinTokenRow]>(
      `INSERT INTO join_tokens (trust_domain, token_hash, spiffe_id, expires_at, created_at)
       VALUES (@trust_domain, @token_hash, @spiffe_id, @expires_at, @created_at)`,
    ),
    tokenConsume: db.prepare<[string, string], JoinTokenRow>(
      'DELETE FROM join_tokens WHERE trust_domain = ? AND token_hash = ? RETURNING *',
    ),
    tokenList: db.prepare<[string], JoinTokenRow>(
      'SELECT * FROM join_tokens WHERE trust_domain = ? ORDER BY created_at, token_hash',
    ),
    tokenDelete: db.prepare<[string, string]>(
      'DELETE FROM join_tokens WHERE trust_domain = ? AND token_hash = ?',
    ),

    apiInsert: db.prepare<[ApiTokenRow]>(
      `INSERT INTO api_tokens (id, token_hash, name, grants, created_at, expires_at)
       VALUES (@id, @token_hash, @name, @grants, @created_at, @expires_at)`,
    ),
    apiByHash: db.prepare<[string], ApiTokenRow>('SELECT * FROM api_tokens WHERE token_hash = ?'),
    apiList: db.prepare<[], ApiTokenRow>('SELECT * FROM api_tokens ORDER BY created_at, id'),
    apiDelete: db.prepare<[string]>('DELETE FROM api_tokens WHERE id = ?'),

    auditInsert: db
      .prepare<[Omit<AuditRow, 'seq'>], number>(
        `INSERT INTO audit (trust_domain, at, actor, action, target, result, status, code, request_id)
       VALUES (@trust_domain, @at, @actor, @action, @target, @result, @status, @code, @request_id)
       RETURNING seq`,
      )
      .pluck(),
    auditList: db.prepare<[string, number, number], AuditRow>(
      'SELECT * FROM audit WHERE trust_domain = ? AND seq < ? ORDER BY seq DESC LIMIT ?',
    ),
    auditDeleteDomain: db.prepare<[string]>('DELETE FROM audit WHERE trust_domain = ?'),

    issuanceInsert: db.prepare(
      `INSERT OR IGNORE INTO issuances (trust_domain, kind, serial, spiffe_id, issued_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    issuancePrune: db.prepare<[string, number]>(
      'DELETE FROM issuances WHERE trust_domain = ? AND issued_at < ?',
    ),
    issuanceCount: db
      .prepare<[string, number], number>(
        'SELECT count(*) FROM issuances WHERE trust_domain = ? AND issued_at >= ?',
      )
      .pluck(),

    agentInsert: db.prepare<[AgentRow]>(
      `INSERT OR REPLACE INTO agents (trust_domain, spiffe_id, attestor, selectors, serial, svid_expires_at,
         attested_at, last_seen_at, can_reattest, banned)
       VALUES (@trust_domain, @spiffe_id, @attestor, @selectors, @serial, @svid_expires_at,
         @attested_at, @last_seen_at, @can_reattest, @banned)`,
    ),
    agentGet: db.prepare<[string, string], AgentRow>(
      'SELECT * FROM agents WHERE trust_domain = ? AND spiffe_id = ?',
    ),
    agentList: db.prepare<[string], AgentRow>(
      'SELECT * FROM agents WHERE trust_domain = ? ORDER BY spiffe_id',
    ),
    // One statement: the compare-and-set holds across connections and processes.
    agentRenew: db.prepare<[string, number, number, string, string, string]>(
      `UPDATE agents SET serial = ?, svid_expires_at = ?, last_seen_at = ?
       WHERE trust_domain = ? AND spiffe_id = ? AND serial = ? AND banned = 0`,
    ),
    agentTouch: db.prepare<[number, string, string]>(
      'UPDATE agents SET last_seen_at = ? WHERE trust_domain = ? AND spiffe_id = ?',
    ),
    agentBan: db.prepare<[string, string]>(
      'UPDATE agents SET banned = 1 WHERE trust_domain = ? AND spiffe_id = ?',
    ),
    agentDelete: db.prepare<[string, string]>('DELETE FROM agents WHERE trust_domain = ? AND spiffe_id = ?'),

    claimPrune: db.prepare<[string, number]>('DELETE FROM claims WHERE trust_domain = ? AND expires_at <= ?'),
    claimInsert: db.prepare<[string, string, number]>(
      'INSERT OR IGNORE INTO claims (trust_domain, key, expires_at) VALUES (?, ?, ?)',
    ),

    policyCurrent: db.prepare<[string], PolicyRow>(
      'SELECT * FROM policies WHERE trust_domain = ? ORDER BY version DESC LIMIT 1',
    ),
    policyList: db.prepare<[string, number], PolicyRow>(
      'SELECT * FROM policies WHERE trust_domain = ? ORDER BY version DESC LIMIT ?',
    ),
    policyInsert: db.prepare<[PolicyRow]>(
      `INSERT INTO policies (trust_domain, version, text, mode, updated_at, updated_by)
       VALUES (@trust_domain, @version, @text, @mode, @updated_at, @updated_by)`,
    ),
    policyTrim: db.prepare<[string, number]>('DELETE FROM policies WHERE trust_domain = ? AND version <= ?'),

    flowUpsert: db.prepare(
      `INSERT OR REPLACE INTO flows (trust_domain, id, side, start, verdict, source_spiffe_id,
         destination_spiffe_id, record)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    flowPruneAge: db.prepare<[string, number]>('DELETE FROM flows WHERE trust_domain = ? AND start < ?'),
    flowCount: db.prepare<[string], number>('SELECT count(*) FROM flows WHERE trust_domain = ?').pluck(),
    // Keeps the newest maxCount, in the listing order (start, then id and side, descending).
    flowPruneCount: db.prepare<[string, string, number]>(
      `DELETE FROM flows WHERE trust_domain = ? AND rowid IN (
         SELECT rowid FROM flows WHERE trust_domain = ? ORDER BY start DESC, id DESC, side DESC
         LIMIT -1 OFFSET ?)`,
    ),

    fedInsert: db.prepare<[FederationRow]>(
      `INSERT INTO federations (trust_domain, foreign_trust_domain, bundle_endpoint_url, profile,
         endpoint_spiffe_id, ca_bundle_pem, bundle, sequence, refresh_hint_seconds, last_refresh_at,
         last_error, last_error_at, created_at)
       VALUES (@trust_domain, @foreign_trust_domain, @bundle_endpoint_url, @profile, @endpoint_spiffe_id,
         @ca_bundle_pem, @bundle, @sequence, @refresh_hint_seconds, @last_refresh_at, @last_error,
         @last_error_at, @created_at)`,
    ),
    fedGet: db.prepare<[string, string], FederationRow>(
      'SELECT * FROM federations WHERE trust_domain = ? AND foreign_trust_domain = ?',
    ),
    fedList: db.prepare<[string], FederationRow>(
      'SELECT * FROM federations WHERE trust_domain = ? ORDER BY foreign_trust_domain',
    ),
    fedPutBundle: db.prepare<[string, number, number, number, string, string]>(
      `UPDATE federations SET bundle = ?, sequence = ?, refresh_hint_seconds = ?, last_refresh_at = ?,
         last_error = NULL, last_error_at = NULL
       WHERE trust_domain = ? AND foreign_trust_domain = ?`,
    ),
    fedError: db.prepare<[string, number, string, string]>(
      `UPDATE federations SET last_error = ?, last_error_at = ?
       WHERE trust_domain = ? AND foreign_trust_domain = ?`,
    ),
    fedDelete: db.prepare<[string, string]>(
      'DELETE FROM federations WHERE trust_domain = ? AND foreign_trust_domain = ?',
    ),

    tunnelInsert: db.prepare<[string, string, string]>(
      'INSERT INTO tunnels (trust_domain, name, record) VALUES (?, ?, ?)',
    ),
    tunnelGet: db
      .prepare<[string, string], string>('SELECT record FROM tunnels WHERE trust_domain = ? AND name = ?')
      .pluck(),
    tunnelList: db
      .prepare<[string], string>('SELECT record FROM tunnels WHERE trust_domain = ? ORDER BY name')
      .pluck(),
    tunnelDelete: db.prepare<[string, string]>('DELETE FROM tunnels WHERE trust_domain = ? AND name = ?'),

    metaGet: db.prepare<[string], string>('SELECT value FROM meta WHERE key = ?').pluck(),
    metaInsert: db.prepare<[string, string]>(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING',
    ),
  }
}

type Statements = ReturnType<typeof prepareStatements>

function entryListSql(filter: EntryFilter): string {
  const where = ['trust_domain = @td']
  if (filter.spiffeId !== undefined) where.push('spiffe_id = @spiffeId')
  if (filter.parentId !== undefined) where.push('parent_id = @parentId')
  if (filter.selector !== undefined) {
    where.push(`id IN (SELECT entry_id FROM entry_selectors
      WHERE trust_domain = @td AND type = @selectorType AND value = @selectorValue)`)
  }
  return `SELECT * FROM entries WHERE ${where.join(' AND ')} ORDER BY id`
}

function flowListSql(query: FlowQuery): string {
  const where = ['trust_domain = @td', 'start >= @since', 'start <= @until']
  if (query.verdict !== undefined) where.push('verdict = @verdict')
  if (query.side !== undefined) where.push('side = @side')
  if (query.spiffeId !== undefined) {
    where.push('(source_spiffe_id = @spiffeId OR destination_spiffe_id = @spiffeId)')
  }
  return `SELECT record FROM flows WHERE ${where.join(' AND ')}
    ORDER BY start DESC, id DESC, side DESC LIMIT @limit`
}

function isConstraint(err: unknown, ...codes: string[]): boolean {
  return err instanceof Database.SqliteError && codes.includes(err.code)
}

function conflictOr(err: unknown, resource: string, message: string): unknown {
  if (isConstraint(err, 'SQLITE_CONSTRAINT_PRIMARYKEY', 'SQLITE_CONSTRAINT_UNIQUE')) {
    return new StoreConflictError(message, resource)
  }
  return err
}

function sameDomain(expected: string, actual: string, what: string): void {
  if (expected !== actual) throw new TypeError(`${what} belongs to ${actual}, not ${expected}`)
}

/**
 * A SQLite store serves one process: several processes may share the file, but watch() hears only the
 * writes made through this instance.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const
  readonly #db: Db
  readonly #changes = new ChangeListeners()
  readonly #ping: Database.Statement
  // Prepared on first use: the tables exist only once migrate() has run (in this or another process).
  #statements: Statements | undefined
  readonly #entryLists = new Map<string, Database.Statement<[Record<string, string>], EntryRow>>()
  readonly #flowLists = new Map<string, Database.Statement<[Record<string, string | number>], string>>()

  constructor(path: string) {
    this.#db = new Database(path)
    // First, so that switching the journal mode waits for another process instead of failing.
    this.#db.pragma('busy_timeout = 5000')
    this.#db.pragma('journal_mode = WAL')
    // In WAL mode NORMAL fsyncs at checkpoints only: a commit survives a crash of this process (the WAL
    // is in the OS page cache) but may be lost on power loss or a kernel crash. We promise the former.
    this.#db.pragma('synchronous = NORMAL')
    this.#db.pragma('foreign_keys = ON')
    this.#ping = this.#db.prepare('SELECT 1')
  }

  get #q(): Statements {
    this.#statements ??= prepareStatements(this.#db)
    return this.#statements
  }

  #requireDomain(name: string): void {
    if (this.#q.tdExists.get(name) === undefined) throw new StoreMissingTrustDomainError(name)
  }

  async migrate(): Promise<void> {
    applyMigrations(this.#db)
  }

  async ping(): Promise<void> {
    this.#ping.get()
  }

  async close(): Promise<void> {
    this.#changes.clear()
    if (this.#db.open) this.#db.close()
  }

  /** Called only after the write committed: better-sqlite3 transactions are synchronous. */
  #changed(trustDomain: string, kind: ChangeEvent['kind'], id?: string): void {
    this.#changes.emit(changeEvent(trustDomain, kind, id))
  }

  watch(listener: (event: ChangeEvent) => void): () => void {
    return this.#changes.add(listener)
  }

  async createTrustDomain(td: TrustDomainRecord, root: RootCaRecord): Promise<void> {
    sameDomain(td.name, root.trustDomain, 'root CA')
    const q = this.#q
    try {
      this.#db
        .transaction(() => {
          q.tdInsert.run(td.name, td.createdAt, JSON.stringify(td.settings))
          q.rootInsert.run(rootParams(root))
        })
        .immediate()
    } catch (err) {
      throw conflictOr(err, 'trust_domain', `trust domain ${td.name} already exists`)
    }
    this.#changed(td.name, 'trust-domain')
  }

  async getTrustDomain(name: string): Promise<TrustDomainRecord | undefined> {
    const row = this.#q.tdGet.get(name)
    return row && toTrustDomain(row)
  }

  async listTrustDomains(): Promise<TrustDomainRecord[]> {
    return this.#q.tdList.all().map(toTrustDomain)
  }

  async updateTrustDomainSettings(
    name: string,
    settings: TrustDomainSettings,
  ): Promise<TrustDomainRecord | undefined> {
    const row = this.#q.tdUpdateSettings.get(JSON.stringify(settings), name)
    if (!row) return undefined
    this.#changed(name, 'trust-domain')
    return toTrustDomain(row)
  }

  async deleteTrustDomain(name: string): Promise<boolean> {
    const q = this.#q
    const deleted = this.#db
      .transaction(() => {
        // Foreign keys cascade to everything else; the audit table has none (see the migration).
        if (q.tdDelete.run(name).changes === 0) return false
        q.auditDeleteDomain.run(name)
        return true
      })
      .immediate()
    if (deleted) this.#changed(name, 'trust-domain')
    return deleted
  }

  async listRootCas(trustDomain: string): Promise<RootCaRecord[]> {
    return this.#q.rootList.all(trustDomain).map(toRootCa)
  }

  async addRootCa(root: RootCaRecord): Promise<number> {
    const q = this.#q
    let seq: number
    try {
      seq = this.#db
        .transaction(() => {
          this.#requireDomain(root.trustDomain)
          q.rootInsert.run(rootParams(root))
          return q.tdBumpSeq.get(root.trustDomain)!
        })
        .immediate()
    } catch (err) {
      throw conflictOr(err, 'root_ca', `root CA ${root.id} already exists`)
    }
    this.#changed(root.trustDomain, 'bundle')
    return seq
  }

  async publishJwtKey(key: JwtKeyRecord): Promise<number> {
    const q = this.#q
    let seq: number
    try {
      seq = this.#db
        .transaction(() => {
          this.#requireDomain(key.trustDomain)
          q.jwtInsert.run({
            trust_domain: key.trustDomain,
            kid: key.kid,
            public_jwk: JSON.stringify(key.publicJwk),
            not_after: key.notAfter,
            created_at: key.createdAt,
          })
          return q.tdBumpSeq.get(key.trustDomain)!
        })
        .immediate()
    } catch (err) {
      throw conflictOr(err, 'jwt_key', `JWT key ${key.kid} already exists`)
    }
    this.#changed(key.trustDomain, 'bundle')
    return seq
  }

  async listJwtKeys(trustDomain: string): Promise<JwtKeyRecord[]> {
    return this.#q.jwtList.all(trustDomain).map(toJwtKey)
  }

  async pruneJwtKeys(trustDomain: string, now: number): Promise<number | undefined> {
    const q = this.#q
    const seq = this.#db
      .transaction(() => {
        if (q.jwtPrune.run(trustDomain, now).changes === 0) return undefined
        return q.tdBumpSeq.get(trustDomain)
      })
      .immediate()
    if (seq !== undefined) this.#changed(trustDomain, 'bundle')
    return seq
  }

  async getBundleSequence(trustDomain: string): Promise<number> {
    return this.#q.tdSeq.get(trustDomain) ?? 0
  }

  #writeSelectors(entry: EntryRecord): void {
    const q = this.#q
    q.selectorClear.run(entry.trustDomain, entry.id)
    for (const s of entry.selectors) q.selectorInsert.run(entry.trustDomain, entry.id, s.type, s.value)
  }

  async createEntry(entry: EntryRecord): Promise<void> {
    const q = this.#q
    try {
      this.#db
        .transaction(() => {
          this.#requireDomain(entry.trustDomain)
          q.entryInsert.run(entryParams(entry, canonicalSelectors(entry.selectors)))
          this.#writeSelectors(entry)
        })
        .immediate()
    } catch (err) {
      throw conflictOr(err, 'entry', `entry ${entry.id} or an entry with the same identity already exists`)
    }
    this.#changed(entry.trustDomain, 'entry', entry.id)
  }

  async getEntry(trustDomain: string, id: string): Promise<EntryRecord | undefined> {
    const row = this.#q.entryGet.get(trustDomain, id)
    return row && toEntry(row)
  }

  async listEntries(trustDomain: string, filter: EntryFilter = {}): Promise<EntryRecord[]> {
    const sql = entryListSql(filter)
    let stmt = this.#entryLists.get(sql)
    if (!stmt) {
      stmt = this.#db.prepare<[Record<string, string>], EntryRow>(sql)
      this.#entryLists.set(sql, stmt)
    }
    const params: Record<string, string> = { td: trustDomain }
    if (filter.spiffeId !== undefined) params.spiffeId = filter.spiffeId
    if (filter.parentId !== undefined) params.parentId = filter.parentId
    if (filter.selector !== undefined) {
      params.selectorType = filter.selector.type
      params.selectorValue = filter.selector.value
    }
    return stmt.all(params).map(toEntry)
  }

  async updateEntry(
    trustDomain: string,
    id: string,
    patch: EntryPatch,
    now: number,
  ): Promise<EntryRecord | undefined> {
    const q = this.#q
    let next: EntryRecord | undefined
    try {
      next = this.#db
        .transaction(() => {
          const row = q.entryGet.get(trustDomain, id)
          if (!row) return undefined
          const updated = applyPatch(toEntry(row), patch, now)
          q.entryUpdate.run(entryParams(updated, canonicalSelectors(updated.selectors)))
          if (patchEntries(patch).some(([field]) => field === 'selectors')) this.#writeSelectors(updated)
          return updated
        })
        .immediate()
    } catch (err) {
      throw conflictOr(err, 'entry', `an entry with the same identity as ${id} already exists`)
    }
    if (next) this.#changed(trustDomain, 'entry', id)
    return next
  }

  async deleteEntry(trustDomain: string, id: string): Promise<boolean> {
    const deleted = this.#q.entryDelete.run(trustDomain, id).changes > 0
    if (deleted) this.#changed(trustDomain, 'entry', id)
    return deleted
  }

  async createJoinToken(token: JoinTokenRecord): Promise<void> {
    const q = this.#q
    try {
      this.#db
        .transaction(() => {
          this.#requireDomain(token.trustDomain)
          q.tokenInsert.run({
            trust_domain: token.trustDomain,
            token_hash: token.tokenHash,
            spiffe_id: token.spiffeId ?? null,
            expires_at: token.expiresAt,
            created_at: token.createdAt,
          })
        })
        .immediate()
    } catch (err) {
      throw conflictOr(err, 'join_token', 'join token already exists')
    }
  }

  async consumeJoinToken(
    trustDomain: string,
    tokenHash: string,
    now: number,
  ): Promise<ConsumeJoinTokenResult> {
    // One statement: of two concurrent consumers (even in two processes) only one gets the row.
    const row = this.#q.tokenConsume.get(trustDomain, tokenHash)
    if (!row) return { ok: false, reason: 'not_found' }
    if (row.expires_at <= now) return { ok: false, reason: 'expired' }
    return { ok: true, token: toJoinToken(row) }
  }

  async listJoinTokens(trustDomain: string): Promise<JoinTokenRecord[]> {
    return this.#q.tokenList.all(trustDomain).map(toJoinToken)
  }

  async deleteJoinToken(trustDomain: string, tokenHash: string): Promise<boolean> {
    return this.#q.tokenDelete.run(trustDomain, tokenHash).changes > 0
  }

  async createApiToken(token: ApiTokenRecord): Promise<void> {
    try {
      this.#q.apiInsert.run({
        id: token.id,
        token_hash: token.tokenHash,
        name: token.name,
        grants: JSON.stringify(token.grants),
        created_at: token.createdAt,
        expires_at: token.expiresAt,
      })
    } catch (err) {
      throw conflictOr(err, 'api_token', `API token ${token.id} or one with the same hash already exists`)
    }
  }

  async findApiTokenByHash(tokenHash: string): Promise<ApiTokenRecord | undefined> {
    const row = this.#q.apiByHash.get(tokenHash)
    return row && toApiToken(row)
  }

  async listApiTokens(): Promise<ApiTokenRecord[]> {
    return this.#q.apiList.all().map(toApiToken)
  }

  async deleteApiToken(id: string): Promise<boolean> {
    return this.#q.apiDelete.run(id).changes > 0
  }

  async appendAudit(record: Omit<AuditRecord, 'seq'>): Promise<number> {
    return this.#q.auditInsert.get({
      trust_domain: record.trustDomain,
      at: record.at,
      actor: record.actor,
      action: record.action,
      target: record.target,
      result: record.result,
      status: record.status,
      code: record.code ?? null,
      request_id: record.requestId,
    })!
  }

  async listAudit(trustDomain: string, query: AuditQuery): Promise<AuditRecord[]> {
    const limit = Math.floor(query.limit)
    if (!(limit > 0)) return []
    const before = query.before ?? Number.MAX_SAFE_INTEGER
    return this.#q.auditList.all(trustDomain, before, limit).map(toAudit)
  }

  async recordIssuances(records: IssuanceRecord[]): Promise<void> {
    if (records.length === 0) return
    const q = this.#q
    const cutoff = issuancePruneCutoff(records)
    this.#db
      .transaction(() => {
        const domains = new Set(records.map((r) => r.trustDomain))
        for (const td of domains) this.#requireDomain(td)
        for (const r of records) {
          q.issuanceInsert.run(r.trustDomain, r.kind, r.serial, r.spiffeId, r.issuedAt, r.expiresAt)
        }
        for (const td of domains) q.issuancePrune.run(td, cutoff)
      })
      .immediate()
  }

  async countIssuances(trustDomain: string, since: number): Promise<number> {
    return this.#q.issuanceCount.get(trustDomain, since) ?? 0
  }

  async attestAgent(agent: AgentRecord): Promise<AgentAttestOutcome> {
    const q = this.#q
    const outcome = this.#db
      .transaction((): AgentAttestOutcome => {
        this.#requireDomain(agent.trustDomain)
        const row = q.agentGet.get(agent.trustDomain, agent.spiffeId)
        if (row?.banned) return 'banned'
        if (row && !row.can_reattest) return 'exists'
        q.agentInsert.run(agentParams(agent))
        return row ? 'reattested' : 'created'
      })
      .immediate()
    if (outcome === 'created' || outcome === 'reattested') {
      this.#changed(agent.trustDomain, 'agent', agent.spiffeId)
    }
    return outcome
  }

  async getAgent(trustDomain: string, spiffeId: string): Promise<AgentRecord | undefined> {
    const row = this.#q.agentGet.get(trustDomain, spiffeId)
    return row && toAgent(row)
  }

  async listAgents(trustDomain: string): Promise<AgentRecord[]> {
    return this.#q.agentList.all(trustDomain).map(toAgent)
  }

  async renewAgentSvid(
    trustDomain: string,
    spiffeId: string,
    previousSerial: string,
    next: { serial: string; svidExpiresAt: number; lastSeenAt: number },
  ): Promise<boolean> {
    const { changes } = this.#q.agentRenew.run(
      next.serial,
      next.svidExpiresAt,
      next.lastSeenAt,
      trustDomain,
      spiffeId,
      previousSerial,
    )
    if (changes === 0) return false
    this.#changed(trustDomain, 'agent', spiffeId)
    return true
  }

  async touchAgent(trustDomain: string, spiffeId: string, lastSeenAt: number): Promise<void> {
    this.#q.agentTouch.run(lastSeenAt, trustDomain, spiffeId)
  }

  async banAgent(trustDomain: string, spiffeId: string): Promise<boolean> {
    if (this.#q.agentBan.run(trustDomain, spiffeId).changes === 0) return false
    this.#changed(trustDomain, 'agent', spiffeId)
    return true
  }

  async evictAgent(trustDomain: string, spiffeId: string): Promise<boolean> {
    if (this.#q.agentDelete.run(trustDomain, spiffeId).changes === 0) return false
    this.#changed(trustDomain, 'agent', spiffeId)
    return true
  }

  async claimOnce(trustDomain: string, key: string, expiresAt: number, now: number): Promise<boolean> {
    const q = this.#q
    return this.#db
      .transaction(() => {
        this.#requireDomain(trustDomain)
        // Expired claims go first, so that the insert below finds their keys free.
        q.claimPrune.run(trustDomain, now)
        return q.claimInsert.run(trustDomain, key, expiresAt).changes === 1
      })
      .immediate()
  }

  async getPolicy(trustDomain: string): Promise<PolicyRecord | undefined> {
    const row = this.#q.policyCurrent.get(trustDomain)
    return row && toPolicy(row)
  }

  async putPolicy(record: PolicyRecord, expectedVersion: number): Promise<boolean> {
    checkPolicyWrite(record, expectedVersion)
    const q = this.#q
    const stored = this.#db
      .transaction(() => {
        this.#requireDomain(record.trustDomain)
        const current = q.policyCurrent.get(record.trustDomain)?.version ?? 0
        if (current !== expectedVersion) return false
        q.policyInsert.run(policyParams(record))
        q.policyTrim.run(record.trustDomain, record.version - POLICY_HISTORY_LIMIT)
        return true
      })
      .immediate()
    if (stored) this.#changed(record.trustDomain, 'policy')
    return stored
  }

  async listPolicyVersions(trustDomain: string, limit: number): Promise<PolicyRecord[]> {
    const n = Math.floor(limit)
    if (!(n > 0)) return []
    return this.#q.policyList.all(trustDomain, n).map(toPolicy)
  }

  async appendFlows(
    trustDomain: string,
    records: FlowRecord[],
    retention: FlowRetention,
    now: number,
  ): Promise<void> {
    checkFlowRetention(retention)
    const q = this.#q
    const cutoff = flowPruneCutoff(retention, now)
    this.#db
      .transaction(() => {
        this.#requireDomain(trustDomain)
        for (const r of records) {
          q.flowUpsert.run(
            trustDomain,
            r.id,
            r.side,
            r.start,
            r.verdict,
            r.source.spiffeId ?? null,
            r.destination.spiffeId ?? null,
            JSON.stringify(r),
          )
        }
        q.flowPruneAge.run(trustDomain, cutoff)
        if ((q.flowCount.get(trustDomain) ?? 0) > retention.maxCount) {
          q.flowPruneCount.run(trustDomain, trustDomain, retention.maxCount)
        }
      })
      .immediate()
  }

  async listFlows(trustDomain: string, query: FlowQuery): Promise<FlowRecord[]> {
    const limit = Math.floor(query.limit)
    if (!(limit > 0)) return []
    const sql = flowListSql(query)
    let stmt = this.#flowLists.get(sql)
    if (!stmt) {
      stmt = this.#db.prepare<[Record<string, string | number>], string>(sql).pluck()
      this.#flowLists.set(sql, stmt)
    }
    const params: Record<string, string | number> = {
      td: trustDomain,
      since: query.since ?? Number.MIN_SAFE_INTEGER,
      until: query.until ?? Number.MAX_SAFE_INTEGER,
      limit,
    }
    if (query.verdict !== undefined) params.verdict = query.verdict
    if (query.side !== undefined) params.side = query.side
    if (query.spiffeId !== undefined) params.spiffeId = query.spiffeId
    return stmt.all(params).map((text) => JSON.parse(text) as FlowRecord)
  }

  async createFederation(record: FederationRecord): Promise<void> {
    const q = this.#q
    try {
      this.#db
        .transaction(() => {
          this.#requireDomain(record.trustDomain)
          q.fedInsert.run(federationParams(record))
        })
        .immediate()
    } catch (err) {
      throw conflictOr(
        err,
        'federation',
        `${record.trustDomain} already federates with ${record.foreignTrustDomain}`,
      )
    }
    this.#changed(record.trustDomain, 'bundle', record.foreignTrustDomain)
  }

  async getFederation(
    trustDomain: string,
    foreignTrustDomain: string,
  ): Promise<FederationRecord | undefined> {
    const row = this.#q.fedGet.get(trustDomain, foreignTrustDomain)
    return row && toFederation(row)
  }

  async listFederations(trustDomain: string): Promise<FederationRecord[]> {
    return this.#q.fedList.all(trustDomain).map(toFederation)
  }

  async putFederationBundle(
    trustDomain: string,
    foreignTrustDomain: string,
    update: FederationBundleUpdate,
  ): Promise<FederationBundleOutcome> {
    checkFederationBundleUpdate(update)
    const q = this.#q
    const outcome = this.#db
      .transaction((): FederationBundleOutcome => {
        const row = q.fedGet.get(trustDomain, foreignTrustDomain)
        if (!row) return 'not_found'
        const decided = federationBundleOutcome(toFederation(row), update)
        if (decided === 'older') return decided
        q.fedPutBundle.run(
          update.bundle,
          update.sequence,
          update.refreshHintSeconds,
          update.refreshedAt,
          trustDomain,
          foreignTrustDomain,
        )
        return decided
      })
      .immediate()
    if (outcome === 'stored') this.#changed(trustDomain, 'bundle', foreignTrustDomain)
    return outcome
  }

  async recordFederationError(
    trustDomain: string,
    foreignTrustDomain: string,
    message: string,
    at: number,
  ): Promise<boolean> {
    return this.#q.fedError.run(message, at, trustDomain, foreignTrustDomain).changes > 0
  }

  async deleteFederation(trustDomain: string, foreignTrustDomain: string): Promise<boolean> {
    if (this.#q.fedDelete.run(trustDomain, foreignTrustDomain).changes === 0) return false
    this.#changed(trustDomain, 'bundle', foreignTrustDomain)
    return true
  }

  async createTunnel(record: TunnelRecord): Promise<void> {
    try {
      this.#db
        .transaction(() => {
          this.#requireDomain(record.trustDomain)
          this.#q.tunnelInsert.run(record.trustDomain, record.name, tunnelJson(record))
        })
        .immediate()
    } catch (err) {
      throw conflictOr(err, 'tunnel', `${record.trustDomain} already has a tunnel ${record.name}`)
    }
  }

  async getTunnel(trustDomain: string, name: string): Promise<TunnelRecord | undefined> {
    const text = this.#q.tunnelGet.get(trustDomain, name)
    return text === undefined ? undefined : (JSON.parse(text) as TunnelRecord)
  }

  async listTunnels(trustDomain: string): Promise<TunnelRecord[]> {
    return this.#q.tunnelList.all(trustDomain).map((t) => JSON.parse(t) as TunnelRecord)
  }

  async deleteTunnel(trustDomain: string, name: string): Promise<boolean> {
    return this.#q.tunnelDelete.run(trustDomain, name).changes > 0
  }

  async getMeta(key: string): Promise<string | undefined> {
    return this.#q.metaGet.get(key)
  }

  async setMetaIfAbsent(key: string, value: string): Promise<boolean> {
    return this.#q.metaInsert.run(key, value).changes === 1
  }
}

function rootParams(root: RootCaRecord): RootCaRow {
  return {
    trust_domain: root.trustDomain,
    id: root.id,
    cert_pem: root.certPem,
    sealed_key: root.sealedKey,
    not_before: root.notBefore,
    not_after: root.notAfter,
    created_at: root.createdAt,
  }
}
