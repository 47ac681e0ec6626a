import { Redis } from 'ioredis'
import type { FlowRecord } from '../flows/flow.ts'
import {
  byNumberThenString,
  byString,
  checkFederationBundleUpdate,
  checkFlowRetention,
  checkPolicyWrite,
  entryMatches,
  flowKey,
  flowMatches,
  flowPruneCutoff,
  issuancePruneCutoff,
  tunnelJson,
} from './canonical.ts'
import { ChangeListeners, parseChangeEvent } from './events.ts'
import { decodeAgent, encodeAgent } from './redis-agent.ts'
import {
  decodeEntry,
  encodeEntry,
  encodePatch,
  pairsToObject,
  parentIdIndex,
  selectorIndex,
  spiffeIdIndex,
} from './redis-entry.ts'
import { checkDomainName, RedisKeys } from './redis-keys.ts'
import { SCRIPTS, type ScriptName } from './redis-scripts.ts'
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

// 2: agents and claims (an older build would leave them behind when it deletes a trust domain).
// 3: policies and flows (the same reason).
// 4: federations (the same reason).
// 5: tunnels (the same reason).
export const REDIS_SCHEMA_VERSION = 5

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>

function translate(err: unknown): unknown {
  if (!(err instanceof Error)) return err
  const m = /^SIGIL_([A-Z_]+) ?(.*)$/.exec(err.message)
  if (!m) return err
  const [, code, detail = ''] = m
  if (code === 'CONFLICT')
    return new StoreConflictError(`${detail.replaceAll('_', ' ')} already exists`, detail)
  if (code === 'MISSING_TD') return new StoreMissingTrustDomainError(detail)
  if (code === 'SCHEMA_NEWER') {
    return new Error(
      `redis schema version ${detail} is newer than this build supports (${REDIS_SCHEMA_VERSION})`,
    )
  }
  return err
}

function parseAll<T>(texts: string[]): T[] {
  return texts.map((text) => JSON.parse(text) as T)
}

function policyJson(p: PolicyRecord): string {
  const { trustDomain, version, text, mode, updatedAt, updatedBy } = p
  return JSON.stringify({ trustDomain, version, text, mode, updatedAt, updatedBy })
}

const FEDERATION_FIELDS = [
  'trustDomain',
  'foreignTrustDomain',
  'bundleEndpointUrl',
  'profile',
  'endpointSpiffeId',
  'caBundlePem',
  'bundle',
  'sequence',
  'refreshHintSeconds',
  'lastRefreshAt',
  'lastError',
  'lastErrorAt',
  'createdAt',
] as const satisfies readonly (keyof FederationRecord)[]

function federationJson(f: FederationRecord): string {
  const out: Record<string, unknown> = {}
  for (const key of FEDERATION_FIELDS) if (f[key] !== undefined) out[key] = f[key]
  return JSON.stringify(out)
}

/** The record in the field order of the type; the Lua scripts re-encode it in their own order. */
function federationFromJson(text: string): FederationRecord {
  const raw = JSON.parse(text) as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const key of FEDERATION_FIELDS) if (raw[key] !== undefined && raw[key] !== null) out[key] = raw[key]
  return out as unknown as FederationRecord
}

const FEDERATION_OUTCOMES: ReadonlySet<string> = new Set<FederationBundleOutcome>([
  'stored',
  'unchanged',
  'older',
  'not_found',
])

function rootJson(root: RootCaRecord): string {
  const { trustDomain, id, certPem, sealedKey, notBefore, notAfter, createdAt } = root
  return JSON.stringify({ trustDomain, id, certPem, sealedKey, notBefore, notAfter, createdAt })
}

function sameDomain(expected: string, actual: string, what: string): void {
  if (expected !== actual) throw new TypeError(`${what} belongs to ${actual}, not ${expected}`)
}

const OUTCOMES: ReadonlySet<string> = new Set<AgentAttestOutcome>([
  'created',
  'reattested',
  'banned',
  'exists',
])

async function quit(redis: Redis): Promise<void> {
  if (redis.status === 'end') return
  try {
    await redis.quit()
  } catch {
    redis.disconnect()
  }
}

/**
 * Change events travel by Redis pub/sub, at most once: a watcher hears every change made by any process
 * sharing the Redis (this one included, by the same path) while its subscriber connection is up, and
 * nothing of what happens while that connection reconnects.
 */
export class RedisStore implements Store {
  readonly kind = 'redis' as const
  readonly keys: RedisKeys
  readonly #redis: Redis
  readonly #changes = new ChangeListeners()
  #subscriber: Redis | undefined
  // Set while the first SUBSCRIBE is under way; every command waits for it (see watch).
  #subscribing: Promise<void> | undefined
  #closed = false

  /** `redis` is a URL (redis://host:port/db, rediss://...) or a connection this store takes over. */
  constructor(redis: string | Redis, prefix = 'sigil:') {
    this.#redis = typeof redis === 'string' ? new Redis(redis) : redis
    this.keys = new RedisKeys(prefix)
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      this.#redis.defineCommand(`sigil_${name}`, { numberOfKeys: 0, lua })
    }
  }

  /** The connection for commands, once a pending subscription is in place. */
  async #conn(): Promise<Redis> {
    if (this.#subscribing) await this.#subscribing
    return this.#redis
  }

  async #run(name: ScriptName, ...args: (string | number)[]): Promise<unknown> {
    const redis = await this.#conn()
    const fn = (redis as unknown as Record<string, ScriptFn>)[`sigil_${name}`]!
    try {
      return await fn.call(redis, this.keys.prefix, ...args)
    } catch (err) {
      throw translate(err)
    }
  }

  async migrate(): Promise<void> {
    await this.#run('migrate', REDIS_SCHEMA_VERSION)
  }

  async ping(): Promise<void> {
    const redis = await this.#conn()
    await redis.ping()
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#changes.clear()
    const subscriber = this.#subscriber
    this.#subscriber = undefined
    await Promise.all([quit(this.#redis), subscriber && quit(subscriber)])
  }

  /**
   * Until the first watch() has its subscription, every command of this store waits for it: a write (or a
   * snapshot read) started after watch() returned is ordered after the subscription, so none of the
   * changes that follow it is missed.
   */
  watch(listener: (event: ChangeEvent) => void): () => void {
    const unsubscribe = this.#changes.add(listener)
    if (!this.#subscriber && !this.#closed) this.#subscribe()
    return unsubscribe
  }

  #subscribe(): void {
    const channel = this.keys.events
    const subscriber = this.#redis.duplicate()
    this.#subscriber = subscriber
    subscriber.on('message', (from: string, text: string) => {
      const event = from === channel ? parseChangeEvent(text) : undefined
      if (event) this.#changes.emit(event)
    })
    let subscribed = false
    const subscribe = () =>
      subscriber.subscribe(channel).then(
        () => {
          subscribed = true
        },
        () => {},
      )
    // ioredis restores a subscription after a reconnect, but not one whose SUBSCRIBE failed (Redis was
    // unreachable for longer than the retry limit): that one is sent again once the connection is back.
    subscriber.on('ready', () => {
      if (!subscribed) void subscribe()
    })
    const pending = subscribe()
    this.#subscribing = pending
    void pending.then(() => {
      if (this.#subscribing === pending) this.#subscribing = undefined
    })
  }

  async createTrustDomain(td: TrustDomainRecord, root: RootCaRecord): Promise<void> {
    sameDomain(td.name, root.trustDomain, 'root CA')
    await this.#run(
      'createTrustDomain',
      checkDomainName(td.name),
      td.createdAt,
      JSON.stringify(td.settings),
      root.id,
      rootJson(root),
    )
  }

  async getTrustDomain(name: string): Promise<TrustDomainRecord | undefined> {
    const redis = await this.#conn()
    const [createdAt, settings] = await redis.hmget(this.keys.domain(name, 'td'), 'createdAt', 'settings')
    if (createdAt == null || settings == null) return undefined
    return { name, createdAt: Number(createdAt), settings: JSON.parse(settings) }
  }

  async listTrustDomains(): Promise<TrustDomainRecord[]> {
    const redis = await this.#conn()
    const names = await redis.smembers(this.keys.domains)
    const found = await Promise.all(names.map((name) => this.getTrustDomain(name)))
    return found.filter((td) => td !== undefined).sort(byString((td) => td.name))
  }

  async updateTrustDomainSettings(
    name: string,
    settings: TrustDomainSettings,
  ): Promise<TrustDomainRecord | undefined> {
    const text = JSON.stringify(settings)
    const createdAt = await this.#run('updateTrustDomainSettings', checkDomainName(name), text)
    if (createdAt == null) return undefined
    return { name, createdAt: Number(createdAt), settings: JSON.parse(text) }
  }

  async deleteTrustDomain(name: string): Promise<boolean> {
    return (await this.#run('deleteTrustDomain', checkDomainName(name))) === 1
  }

  async listRootCas(trustDomain: string): Promise<RootCaRecord[]> {
    const redis = await this.#conn()
    const roots = parseAll<RootCaRecord>(await redis.hvals(this.keys.domain(trustDomain, 'roots')))
    return roots.sort(
      byNumberThenString(
        (r) => r.createdAt,
        (r) => r.id,
      ),
    )
  }

  async addRootCa(root: RootCaRecord): Promise<number> {
    return Number(await this.#run('addRootCa', checkDomainName(root.trustDomain), root.id, rootJson(root)))
  }

  async publishJwtKey(key: JwtKeyRecord): Promise<number> {
    const { trustDomain, kid, publicJwk, notAfter, createdAt } = key
    const text = JSON.stringify({ trustDomain, kid, publicJwk, notAfter, createdAt })
    return Number(await this.#run('publishJwtKey', checkDomainName(trustDomain), kid, text, notAfter))
  }

  async listJwtKeys(trustDomain: string): Promise<JwtKeyRecord[]> {
    const redis = await this.#conn()
    const keys = parseAll<JwtKeyRecord>(await redis.hvals(this.keys.domain(trustDomain, 'jwt')))
    return keys.sort(
      byNumberThenString(
        (k) => k.createdAt,
        (k) => k.kid,
      ),
    )
  }

  async pruneJwtKeys(trustDomain: string, now: number): Promise<number | undefined> {
    const seq = await this.#run('pruneJwtKeys', checkDomainName(trustDomain), now)
    return seq == null ? undefined : Number(seq)
  }

  async getBundleSequence(trustDomain: string): Promise<number> {
    const redis = await this.#conn()
    const seq = await redis.hget(this.keys.domain(trustDomain, 'td'), 'seq')
    return seq == null ? 0 : Number(seq)
  }

  async createEntry(entry: EntryRecord): Promise<void> {
    await this.#run('createEntry', checkDomainName(entry.trustDomain), entry.id, ...encodeEntry(entry))
  }

  async getEntry(trustDomain: string, id: string): Promise<EntryRecord | undefined> {
    const redis = await this.#conn()
    return decodeEntry(await redis.hgetall(this.keys.domain(trustDomain, `e:${id}`)))
  }

  async listEntries(trustDomain: string, filter: EntryFilter = {}): Promise<EntryRecord[]> {
    const k = (key: Parameters<RedisKeys['domain']>[1]) => this.keys.domain(trustDomain, key)
    const sets: string[] = []
    if (filter.spiffeId !== undefined) sets.push(k(spiffeIdIndex(filter.spiffeId)))
    if (filter.parentId !== undefined) sets.push(k(parentIdIndex(filter.parentId)))
    if (filter.selector !== undefined) sets.push(k(selectorIndex(filter.selector)))
    const redis = await this.#conn()
    const ids = sets.length === 0 ? await redis.smembers(k('entries')) : await redis.sinter(...sets)
    if (ids.length === 0) return []
    const pipeline = redis.pipeline()
    for (const id of ids) pipeline.hgetall(k(`e:${id}`))
    const replies = (await pipeline.exec()) ?? []
    const entries: EntryRecord[] = []
    for (const [err, hash] of replies) {
      if (err) throw err
      const entry = decodeEntry(hash as Record<string, string>)
      // Index sets narrow the candidates; the exact test is here (an entry may change in between).
      if (entry && entryMatches(entry, filter)) entries.push(entry)
    }
    return entries.sort(byString((e) => e.id))
  }

  async updateEntry(
    trustDomain: string,
    id: string,
    patch: EntryPatch,
    now: number,
  ): Promise<EntryRecord | undefined> {
    const hash = await this.#run('updateEntry', checkDomainName(trustDomain), id, now, ...encodePatch(patch))
    return hash == null ? undefined : decodeEntry(pairsToObject(hash))
  }

  async deleteEntry(trustDomain: string, id: string): Promise<boolean> {
    return (await this.#run('deleteEntry', checkDomainName(trustDomain), id)) === 1
  }

  async createJoinToken(token: JoinTokenRecord): Promise<void> {
    const { trustDomain, tokenHash, spiffeId, expiresAt, createdAt } = token
    const text = JSON.stringify({ trustDomain, tokenHash, spiffeId, expiresAt, createdAt })
    await this.#run('createJoinToken', checkDomainName(trustDomain), tokenHash, text)
  }

  async consumeJoinToken(
    trustDomain: string,
    tokenHash: string,
    now: number,
  ): Promise<ConsumeJoinTokenResult> {
    const text = await this.#run('consumeJoinToken', checkDomainName(trustDomain), tokenHash)
    if (text == null) return { ok: false, reason: 'not_found' }
    const token = JSON.parse(String(text)) as JoinTokenRecord
    if (token.expiresAt <= now) return { ok: false, reason: 'expired' }
    return { ok: true, token }
  }

  async listJoinTokens(trustDomain: string): Promise<JoinTokenRecord[]> {
    const redis = await this.#conn()
    const tokens = parseAll<JoinTokenRecord>(await redis.hvals(this.keys.domain(trustDomain, 'jt')))
    return tokens.sort(
      byNumberThenString(
        (t) => t.createdAt,
        (t) => t.tokenHash,
      ),
    )
  }

  async deleteJoinToken(trustDomain: string, tokenHash: string): Promise<boolean> {
    const redis = await this.#conn()
    return (await redis.hdel(this.keys.domain(trustDomain, 'jt'), tokenHash)) > 0
  }

  async createApiToken(token: ApiTokenRecord): Promise<void> {
    const { id, tokenHash, name, grants, createdAt, expiresAt } = token
    const text = JSON.stringify({ id, tokenHash, name, grants, createdAt, expiresAt })
    await this.#run('createApiToken', id, tokenHash, text)
  }

  async findApiTokenByHash(tokenHash: string): Promise<ApiTokenRecord | undefined> {
    const text = await this.#run('findApiToken', tokenHash)
    return text == null ? undefined : (JSON.parse(String(text)) as ApiTokenRecord)
  }

  async listApiTokens(): Promise<ApiTokenRecord[]> {
    const redis = await this.#conn()
    const tokens = parseAll<ApiTokenRecord>(await redis.hvals(this.keys.apiTokens))
    return tokens.sort(
      byNumberThenString(
        (t) => t.createdAt,
        (t) => t.id,
      ),
    )
  }

  async deleteApiToken(id: string): Promise<boolean> {
    return (await this.#run('deleteApiToken', id)) === 1
  }

  async appendAudit(record: Omit<AuditRecord, 'seq'>): Promise<number> {
    const { trustDomain, at, actor, action, target, result, status, code, requestId } = record
    const text = JSON.stringify({ trustDomain, at, actor, action, target, result, status, code, requestId })
    return Number(await this.#run('appendAudit', checkDomainName(trustDomain), text))
  }

  async listAudit(trustDomain: string, query: AuditQuery): Promise<AuditRecord[]> {
    const limit = Math.floor(query.limit)
    if (!(limit > 0)) return []
    const max = query.before === undefined ? '+inf' : `(${query.before}`
    const key = this.keys.domain(trustDomain, 'audit')
    const redis = await this.#conn()
    return parseAll<AuditRecord>(await redis.zrevrangebyscore(key, max, '-inf', 'LIMIT', 0, limit))
  }

  async recordIssuances(records: IssuanceRecord[]): Promise<void> {
    if (records.length === 0) return
    const args: (string | number)[] = [issuancePruneCutoff(records)]
    for (const r of records) {
      const { trustDomain, kind, serial, spiffeId, issuedAt, expiresAt } = r
      const text = JSON.stringify({ trustDomain, kind, serial, spiffeId, issuedAt, expiresAt })
      args.push(checkDomainName(trustDomain), `${kind}:${serial}`, issuedAt, text)
    }
    await this.#run('recordIssuances', ...args)
  }

  async countIssuances(trustDomain: string, since: number): Promise<number> {
    return (await this.#conn()).zcount(this.keys.domain(trustDomain, 'iss'), since, '+inf')
  }

  async attestAgent(agent: AgentRecord): Promise<AgentAttestOutcome> {
    const outcome = String(
      await this.#run(
        'attestAgent',
        checkDomainName(agent.trustDomain),
        agent.spiffeId,
        ...encodeAgent(agent),
      ),
    )
    if (!OUTCOMES.has(outcome)) throw new Error(`unexpected attestAgent outcome ${outcome}`)
    return outcome as AgentAttestOutcome
  }

  async getAgent(trustDomain: string, spiffeId: string): Promise<AgentRecord | undefined> {
    const redis = await this.#conn()
    return decodeAgent(await redis.hgetall(this.keys.domain(trustDomain, `ag:${spiffeId}`)))
  }

  async listAgents(trustDomain: string): Promise<AgentRecord[]> {
    const redis = await this.#conn()
    const ids = await redis.smembers(this.keys.domain(trustDomain, 'agents'))
    if (ids.length === 0) return []
    const pipeline = redis.pipeline()
    for (const id of ids) pipeline.hgetall(this.keys.domain(trustDomain, `ag:${id}`))
    const agents: AgentRecord[] = []
    for (const [err, hash] of (await pipeline.exec()) ?? []) {
      if (err) throw err
      // An agent evicted between the two reads is simply not listed.
      const agent = decodeAgent(hash as Record<string, string>)
      if (agent) agents.push(agent)
    }
    return agents.sort(byString((a) => a.spiffeId))
  }

  async renewAgentSvid(
    trustDomain: string,
    spiffeId: string,
    previousSerial: string,
    next: { serial: string; svidExpiresAt: number; lastSeenAt: number },
  ): Promise<boolean> {
    const renewed = await this.#run(
      'renewAgentSvid',
      checkDomainName(trustDomain),
      spiffeId,
      JSON.stringify(previousSerial),
      JSON.stringify(next.serial),
      JSON.stringify(next.svidExpiresAt),
      JSON.stringify(next.lastSeenAt),
    )
    return renewed === 1
  }

  async touchAgent(trustDomain: string, spiffeId: string, lastSeenAt: number): Promise<void> {
    await this.#run('touchAgent', checkDomainName(trustDomain), spiffeId, JSON.stringify(lastSeenAt))
  }

  async banAgent(trustDomain: string, spiffeId: string): Promise<boolean> {
    return (await this.#run('banAgent', checkDomainName(trustDomain), spiffeId)) === 1
  }

  async evictAgent(trustDomain: string, spiffeId: string): Promise<boolean> {
    return (await this.#run('evictAgent', checkDomainName(trustDomain), spiffeId)) === 1
  }

  async claimOnce(trustDomain: string, key: string, expiresAt: number, now: number): Promise<boolean> {
    return (await this.#run('claimOnce', checkDomainName(trustDomain), key, expiresAt, now)) === 1
  }

  async getPolicy(trustDomain: string): Promise<PolicyRecord | undefined> {
    const [text] = await (await this.#conn()).zrevrange(this.keys.domain(trustDomain, 'pol'), 0, 0)
    return text === undefined ? undefined : (JSON.parse(text) as PolicyRecord)
  }

  async putPolicy(record: PolicyRecord, expectedVersion: number): Promise<boolean> {
    checkPolicyWrite(record, expectedVersion)
    const stored = await this.#run(
      'putPolicy',
      checkDomainName(record.trustDomain),
      expectedVersion,
      record.version,
      policyJson(record),
      POLICY_HISTORY_LIMIT,
    )
    return stored === 1
  }

  async listPolicyVersions(trustDomain: string, limit: number): Promise<PolicyRecord[]> {
    const n = Math.floor(limit)
    if (!(n > 0)) return []
    const redis = await this.#conn()
    return parseAll<PolicyRecord>(await redis.zrevrange(this.keys.domain(trustDomain, 'pol'), 0, n - 1))
  }

  async appendFlows(
    trustDomain: string,
    records: FlowRecord[],
    retention: FlowRetention,
    now: number,
  ): Promise<void> {
    checkFlowRetention(retention)
    const args: (string | number)[] = [
      checkDomainName(trustDomain),
      flowPruneCutoff(retention, now),
      retention.maxCount,
    ]
    for (const r of records) args.push(flowKey(r), r.start, JSON.stringify(r))
    await this.#run('appendFlows', ...args)
  }

  async listFlows(trustDomain: string, query: FlowQuery): Promise<FlowRecord[]> {
    const limit = Math.floor(query.limit)
    if (!(limit > 0)) return []
    const z = this.keys.domain(trustDomain, 'flows')
    const h = this.keys.domain(trustDomain, 'flowrec')
    const max = query.until ?? '+inf'
    const min = query.since ?? '-inf'
    const filtered = query.verdict !== undefined || query.side !== undefined || query.spiffeId !== undefined
    const page = filtered ? Math.max(limit * 2, 1000) : limit
    const redis = await this.#conn()
    const out: FlowRecord[] = []
    // Pages by rank within the window; a flow pruned between two pages only shifts later pages by one.
    for (let offset = 0; out.length < limit; offset += page) {
      const members = await redis.zrevrangebyscore(z, max, min, 'LIMIT', offset, page)
      if (members.length === 0) break
      const texts = await redis.hmget(h, ...members)
      for (const text of texts) {
        if (text == null) continue
        const record = JSON.parse(text) as FlowRecord
        if (flowMatches(record, query)) out.push(record)
        if (out.length === limit) break
      }
      if (members.length < page) break
    }
    return out
  }

  async createTunnel(record: TunnelRecord): Promise<void> {
    await this.#run('createTunnel', checkDomainName(record.trustDomain), record.name, tunnelJson(record))
  }

  async getTunnel(trustDomain: string, name: string): Promise<TunnelRecord | undefined> {
    const text = await (await this.#conn()).hget(this.keys.domain(checkDomainName(trustDomain), 'tun'), name)
    return text == null ? undefined : (JSON.parse(text) as TunnelRecord)
  }

  async listTunnels(trustDomain: string): Promise<TunnelRecord[]> {
    const texts = await (await this.#conn()).hvals(this.keys.domain(checkDomainName(trustDomain), 'tun'))
    return texts.map((t) => JSON.parse(t) as TunnelRecord).sort(byString((t) => t.name))
  }

  async deleteTunnel(trustDomain: string, name: string): Promise<boolean> {
    return (
      (await (await this.#conn()).hdel(this.keys.domain(checkDomainName(trustDomain), 'tun'), name)) === 1
    )
  }

  async createFederation(record: FederationRecord): Promise<void> {
    await this.#run(
      'createFederation',
      checkDomainName(record.trustDomain),
      record.foreignTrustDomain,
      federationJson(record),
    )
  }

  async getFederation(
    trustDomain: string,
    foreignTrustDomain: string,
  ): Promise<FederationRecord | undefined> {
    const redis = await this.#conn()
    const text = await redis.hget(this.keys.domain(trustDomain, 'fed'), foreignTrustDomain)
    return text == null ? undefined : federationFromJson(text)
  }

  async listFederations(trustDomain: string): Promise<FederationRecord[]> {
    const redis = await this.#conn()
    const texts = await redis.hvals(this.keys.domain(trustDomain, 'fed'))
    return texts.map(federationFromJson).sort(byString((f) => f.foreignTrustDomain))
  }

  async putFederationBundle(
    trustDomain: string,
    foreignTrustDomain: string,
    update: FederationBundleUpdate,
  ): Promise<FederationBundleOutcome> {
    checkFederationBundleUpdate(update)
    const outcome = String(
      await this.#run(
        'putFederationBundle',
        checkDomainName(trustDomain),
        foreignTrustDomain,
        update.bundle,
        update.sequence,
        update.refreshHintSeconds,
        update.refreshedAt,
      ),
    )
    if (!FEDERATION_OUTCOMES.has(outcome))
      throw new Error(`unexpected putFederationBundle outcome ${outcome}`)
    return outcome as FederationBundleOutcome
  }

  async recordFederationError(
    trustDomain: string,
    foreignTrustDomain: string,
    message: string,
    at: number,
  ): Promise<boolean> {
    const done = await this.#run(
      'recordFederationError',
      checkDomainName(trustDomain),
      foreignTrustDomain,
      message,
      at,
    )
    return done === 1
  }

  async deleteFederation(trustDomain: string, foreignTrustDomain: string): Promise<boolean> {
    return (await this.#run('deleteFederation', checkDomainName(trustDomain), foreignTrustDomain)) === 1
  }

  async getMeta(key: string): Promise<string | undefined> {
    const redis = await this.#conn()
    return (await redis.hget(this.keys.meta, key)) ?? undefined
  }

  async setMetaIfAbsent(key: string, value: string): Promise<boolean> {
    const redis = await this.#conn()
    return (await redis.hsetnx(this.keys.meta, key, value)) === 1
  }
}
