// Structural checks of a Redis store's keyspace: every index and uniqueness key agrees with the records,
// and no key belongs to nothing. Uses SCAN, so it is for tests only.
import type { Redis } from 'ioredis'
import { canonicalSelectors, flowKey } from '../../services/store/canonical.ts'
import { decodeAgent } from '../../services/store/redis-agent.ts'
import {
  decodeEntry,
  entryIdentity,
  parentIdIndex,
  selectorIndex,
  spiffeIdIndex,
} from '../../services/store/redis-entry.ts'
import { RedisKeys } from '../../services/store/redis-keys.ts'
import { type EntryRecord, POLICY_HISTORY_LIMIT } from '../../services/store/store.ts'

async function scanAll(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  for (let round = 0; round < 1_000_000; round++) {
    const [nextCursor, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    keys.push(...batch)
    cursor = nextCursor
    if (cursor === '0') break
  }
  return keys
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

function parses(text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

async function checkDomain(
  redis: Redis,
  keys: RedisKeys,
  td: string,
  suffixes: Set<string>,
  problems: string[],
): Promise<void> {
  const k = (suffix: Parameters<RedisKeys['domain']>[1]) => keys.domain(td, suffix)
  const p = (msg: string) => problems.push(`${td}: ${msg}`)

  const head = await redis.hgetall(k('td'))
  if (!head.createdAt || !head.settings || !parses(head.settings) || !/^[1-9]\d*$/.test(head.seq ?? '')) {
    p(`incomplete domain record ${JSON.stringify(head)}`)
  }
  for (const text of await redis.hvals(k('roots'))) {
    if (!parses(text) || JSON.parse(text).trustDomain !== td) p(`bad root CA ${text}`)
  }
  const jwt = await redis.hgetall(k('jwt'))
  const jwtexp = await redis.zrange(k('jwtexp'), 0, -1, 'WITHSCORES')
  const expKids = new Map<string, number>()
  for (let i = 0; i < jwtexp.length; i += 2) expKids.set(jwtexp[i]!, Number(jwtexp[i + 1]))
  for (const [kid, text] of Object.entries(jwt)) {
    if (!parses(text) || JSON.parse(text).notAfter !== expKids.get(kid))
      p(`JWT key ${kid} and its expiry disagree`)
  }
  if (expKids.size !== Object.keys(jwt).length) p('jwtexp lists keys that do not exist')
  for (const text of await redis.hvals(k('jt'))) {
    if (!parses(text) || JSON.parse(text).trustDomain !== td) p(`bad join token ${text}`)
  }

  const ids = new Set(await redis.smembers(k('entries')))
  const entries = new Map<string, EntryRecord>()
  const expectedIndex = new Map<string, Set<string>>()
  const uniq = await redis.hgetall(k('uniq'))
  for (const id of ids) {
    const raw = await redis.hgetall(k(`e:${id}`))
    let e: EntryRecord | undefined
    try {
      e = decodeEntry(raw)
    } catch (err) {
      p(`entry ${id} does not decode: ${err}`)
      continue
    }
    if (!e) {
      p(`entries set names ${id}, which has no record`)
      continue
    }
    if (e.id !== id || e.trustDomain !== td) p(`entry ${id} has id ${e.id} in ${e.trustDomain}`)
    if (raw.selCanon !== canonicalSelectors(e.selectors)) p(`entry ${id} has a stale selCanon`)
    entries.set(id, e)
    const identity = entryIdentity(raw.spiffeId!, raw.parentId!, raw.selCanon!)
    if (uniq[identity] !== id) p(`entry ${id}'s identity maps to ${uniq[identity]}`)
    for (const ix of [
      spiffeIdIndex(e.spiffeId),
      parentIdIndex(e.parentId),
      ...e.selectors.map(selectorIndex),
    ]) {
      const key = k(ix)
      if (!expectedIndex.has(key)) expectedIndex.set(key, new Set())
      expectedIndex.get(key)!.add(id)
    }
  }
  for (const [identity, id] of Object.entries(uniq)) {
    if (!entries.has(id)) p(`identity ${identity} maps to missing entry ${id}`)
  }
  if (Object.keys(uniq).length !== entries.size)
    p(`${Object.keys(uniq).length} identities for ${entries.size} entries`)

  for (const suffix of suffixes) {
    if (suffix.startsWith('e:') && !ids.has(suffix.slice(2))) p(`entry record ${suffix} is in no entries set`)
    if (suffix.startsWith('ix:')) {
      const key = k(suffix as `ix:i:${string}`)
      const members = new Set(await redis.smembers(key))
      const expected = expectedIndex.get(key) ?? new Set()
      for (const id of members)
        if (!expected.has(id)) p(`index ${suffix} lists ${id}, which does not belong there`)
      for (const id of expected) if (!members.has(id)) p(`index ${suffix} lacks ${id}`)
    }
  }
  for (const key of expectedIndex.keys()) {
    if (!(await redis.exists(key))) p(`index ${key} is missing`)
  }

  const agents = new Set(await redis.smembers(k('agents')))
  for (const id of agents) {
    try {
      const a = decodeAgent(await redis.hgetall(k(`ag:${id}`)))
      if (!a) p(`agents set names ${id}, which has no record`)
      else if (a.spiffeId !== id || a.trustDomain !== td)
        p(`agent ${id} is ${a.spiffeId} in ${a.trustDomain}`)
    } catch (err) {
      p(`agent ${id} does not decode: ${err}`)
    }
  }
  for (const suffix of suffixes) {
    if (suffix.startsWith('ag:') && !agents.has(suffix.slice(3)))
      p(`agent record ${suffix} is in no agents set`)
  }
  const claims = await redis.zrange(k('claims'), 0, -1, 'WITHSCORES')
  for (let i = 1; i < claims.length; i += 2) {
    if (!Number.isFinite(Number(claims[i]))) p(`claim ${claims[i - 1]} has expiry ${claims[i]}`)
  }

  const iss = await redis.zrange(k('iss'), 0, -1)
  const issrec = await redis.hkeys(k('issrec'))
  if (iss.length !== issrec.length || !iss.every((m) => issrec.includes(m)))
    p('issuance set and records disagree')

  const pol = await redis.zrange(k('pol'), 0, -1, 'WITHSCORES')
  if (pol.length / 2 > POLICY_HISTORY_LIMIT) p(`${pol.length / 2} policy versions kept`)
  for (let i = 0; i < pol.length; i += 2) {
    const text = pol[i]!
    const record = parses(text) ? JSON.parse(text) : undefined
    if (!record || record.version !== Number(pol[i + 1]) || record.trustDomain !== td) {
      p(`policy version out of place: ${text.slice(0, 200)} (score ${pol[i + 1]})`)
    }
  }

  for (const [foreign, text] of Object.entries(await redis.hgetall(k('fed')))) {
    const record = parses(text) ? JSON.parse(text) : undefined
    if (
      !record ||
      record.trustDomain !== td ||
      record.foreignTrustDomain !== foreign ||
      typeof record.sequence !== 'number' ||
      typeof record.lastRefreshAt !== 'number'
    ) {
      p(`federation ${foreign} out of place: ${text.slice(0, 200)}`)
    }
  }

  const flows = await redis.zrange(k('flows'), 0, -1, 'WITHSCORES')
  const flowrec = await redis.hgetall(k('flowrec'))
  if (flows.length / 2 !== Object.keys(flowrec).length) p('flow set and records disagree in number')
  for (let i = 0; i < flows.length; i += 2) {
    const member = flows[i]!
    const text = flowrec[member]
    const record = text && parses(text) ? JSON.parse(text) : undefined
    if (!record || flowKey(record) !== member || record.start !== Number(flows[i + 1])) {
      p(`flow ${JSON.stringify(member)} and its record disagree`)
    }
  }
}

export async function redisIntegrityProblems(redis: Redis, prefix: string): Promise<string[]> {
  const keys = new RedisKeys(prefix)
  const problems: string[] = []
  const globals = new Set([
    keys.schema,
    keys.domains,
    keys.auditSeq,
    keys.apiTokens,
    keys.apiTokenHashes,
    keys.meta,
  ])
  const domainKey = new RegExp(`^${escapeRegExp(prefix)}\\{([^{}]*)\\}:(.+)$`)
  const perDomain = new Map<string, Set<string>>()
  for (const key of await scanAll(redis, `${escapeGlob(prefix)}*`)) {
    const m = domainKey.exec(key)
    if (m) {
      if (!perDomain.has(m[1]!)) perDomain.set(m[1]!, new Set())
      perDomain.get(m[1]!)!.add(m[2]!)
    } else if (!globals.has(key)) {
      problems.push(`unknown key ${key}`)
    }
  }
  const domains = new Set(await redis.smembers(keys.domains))
  for (const [td, suffixes] of perDomain) {
    if (!domains.has(td) && [...suffixes].some((s) => s !== 'audit')) {
      problems.push(`keys of ${JSON.stringify(td)}, which is no trust domain: ${[...suffixes].join(', ')}`)
    }
  }
  for (const td of domains) await checkDomain(redis, keys, td, perDomain.get(td) ?? new Set(), problems)

  const lastSeq = Number((await redis.get(keys.auditSeq)) ?? 0)
  for (const td of perDomain.keys()) {
    const rows = await redis.zrange(keys.domain(td, 'audit'), 0, -1, 'WITHSCORES')
    for (let i = 0; i < rows.length; i += 2) {
      const text = rows[i]!
      const score = Number(rows[i + 1])
      if (!parses(text)) {
        problems.push(`audit record does not parse: ${text}`)
        continue
      }
      const record = JSON.parse(text)
      if (record.seq !== score || record.trustDomain !== td || score > lastSeq) {
        problems.push(`audit record out of place: ${text} (score ${score}, last seq ${lastSeq})`)
      }
    }
  }

  const apiTokens = await redis.hgetall(keys.apiTokens)
  const apiHashes = await redis.hgetall(keys.apiTokenHashes)
  for (const [id, text] of Object.entries(apiTokens)) {
    if (!parses(text) || apiHashes[JSON.parse(text).tokenHash] !== id)
      problems.push(`API token ${id} has no hash index`)
  }
  for (const [hash, id] of Object.entries(apiHashes)) {
    if (!apiTokens[id]) problems.push(`API token hash ${hash} maps to missing ${id}`)
  }
  return problems
}
