// Canonical forms shared by both stores, so that uniqueness and lookups agree between them.
import type { FlowRecord } from '../flows/flow.ts'
import type {
  EntryPatch,
  EntryRecord,
  FederationBundleOutcome,
  FederationBundleUpdate,
  FlowQuery,
  FlowRetention,
  PolicyRecord,
  Selector,
  TunnelRecord,
} from './store.ts'

/** Issuance records this much older than the newest one written may be pruned. */
export const ISSUANCE_RETENTION_MS = 7 * 24 * 60 * 60 * 1000

/**
 * Relative to the batch, not the wall clock: issuedAt comes from the caller's (injectable) clock, and a
 * test clock set in the past must not see its fresh records pruned.
 */
export function issuancePruneCutoff(records: readonly { issuedAt: number }[]): number {
  return (
    records.reduce((max, r) => Math.max(max, r.issuedAt), Number.NEGATIVE_INFINITY) - ISSUANCE_RETENTION_MS
  )
}

function compareSelectors(a: Selector, b: Selector): number {
  if (a.type !== b.type) return a.type < b.type ? -1 : 1
  if (a.value !== b.value) return a.value < b.value ? -1 : 1
  return 0
}

/** One selector as an unambiguous string. */
export function selectorKey(selector: Selector): string {
  return JSON.stringify([selector.type, selector.value])
}

/**
 * The selector part of an entry's identity: sorted and deduplicated, so [a, b], [b, a] and [a, b, a]
 * identify the same entry.
 */
export function canonicalSelectors(selectors: readonly Selector[]): string {
  const sorted = [...selectors].sort(compareSelectors)
  const unique = sorted.filter((s, i) => i === 0 || compareSelectors(s, sorted[i - 1]!) !== 0)
  return JSON.stringify(unique.map((s) => [s.type, s.value]))
}

const PATCH_FIELDS = [
  'spiffeId',
  'parentId',
  'selectors',
  'x509Ttl',
  'jwtTtl',
  'dnsNames',
  'admin',
  'downstream',
  'federatesWith',
  'expiresAt',
] as const satisfies readonly (keyof EntryPatch)[]

/** The defined fields of a patch, and nothing else (a patch cannot move an entry or rewrite its history). */
export function patchEntries(patch: EntryPatch): [keyof EntryPatch, unknown][] {
  const out: [keyof EntryPatch, unknown][] = []
  for (const field of PATCH_FIELDS) {
    if (patch[field] !== undefined) out.push([field, patch[field]])
  }
  return out
}

export function applyPatch(entry: EntryRecord, patch: EntryPatch, now: number): EntryRecord {
  const next: EntryRecord = { ...entry, updatedAt: now, revision: entry.revision + 1 }
  for (const [field, value] of patchEntries(patch)) {
    ;(next as unknown as Record<string, unknown>)[field] = value
  }
  return next
}

export function entryMatches(
  entry: EntryRecord,
  filter: { spiffeId?: string; parentId?: string; selector?: Selector },
): boolean {
  if (filter.spiffeId !== undefined && entry.spiffeId !== filter.spiffeId) return false
  if (filter.parentId !== undefined && entry.parentId !== filter.parentId) return false
  const wanted = filter.selector
  if (wanted && !entry.selectors.some((s) => s.type === wanted.type && s.value === wanted.value)) return false
  return true
}

export function byString<T>(key: (item: T) => string): (a: T, b: T) => number {
  return (a, b) => {
    const x = key(a)
    const y = key(b)
    return x < y ? -1 : x > y ? 1 : 0
  }
}

/** Sorts by a number, then by a string to break ties, the order both stores list in. */
export function byNumberThenString<T>(
  num: (item: T) => number,
  str: (item: T) => string,
): (a: T, b: T) => number {
  const tie = byString(str)
  return (a, b) => num(a) - num(b) || tie(a, b)
}

/** Misuse of putPolicy (a version that does not follow expectedVersion) is a TypeError, in both stores. */
export function checkPolicyWrite(record: PolicyRecord, expectedVersion: number): void {
  if (!Number.isSafeInteger(expectedVersion) || expectedVersion < 0) {
    throw new TypeError(`expectedVersion must be a non-negative integer, got ${expectedVersion}`)
  }
  if (record.version !== expectedVersion + 1) {
    throw new TypeError(
      `policy version ${record.version} must follow expectedVersion ${expectedVersion} (be ${expectedVersion + 1})`,
    )
  }
}

/** The key of a flow report in both stores: a record sent again for the same (id, side) replaces it. */
export function flowKey(record: Pick<FlowRecord, 'id' | 'side'>): string {
  return `${record.id}\n${record.side}`
}

/** Whether a flow passes a query's filters (not its time window or limit). */
export function flowMatches(record: FlowRecord, query: FlowQuery): boolean {
  if (query.verdict !== undefined && record.verdict !== query.verdict) return false
  if (query.side !== undefined && record.side !== query.side) return false
  const id = query.spiffeId
  if (id !== undefined && record.source.spiffeId !== id && record.destination.spiffeId !== id) return false
  return true
}

/** Flows that started before this are pruned. */
export function flowPruneCutoff(retention: FlowRetention, now: number): number {
  return now - retention.maxAgeMs
}

export function checkFlowRetention(retention: FlowRetention): void {
  if (!(retention.maxAgeMs > 0) || !Number.isSafeInteger(retention.maxCount) || retention.maxCount < 1) {
    throw new TypeError('flow retention needs maxAgeMs > 0 and an integer maxCount >= 1')
  }
}

/** Misuse of putFederationBundle (a negative sequence, a hint that is no positive integer) is a TypeError. */
export function checkFederationBundleUpdate(update: FederationBundleUpdate): void {
  if (!Number.isSafeInteger(update.sequence) || update.sequence < 0) {
    throw new TypeError(`a bundle sequence must be a non-negative integer, got ${update.sequence}`)
  }
  if (!Number.isSafeInteger(update.refreshHintSeconds) || update.refreshHintSeconds < 1) {
    throw new TypeError(`a refresh hint must be a positive integer, got ${update.refreshHintSeconds}`)
  }
  if (typeof update.bundle !== 'string' || update.bundle === '') throw new TypeError('a bundle is required')
}

/** What putFederationBundle does with `update` given the stored bundle (the Lua script says the same). */
export function federationBundleOutcome(
  current: { bundle?: string | undefined; sequence: number },
  update: FederationBundleUpdate,
): Exclude<FederationBundleOutcome, 'not_found'> {
  if (current.bundle !== undefined && update.sequence < current.sequence) return 'older'
  return current.bundle === update.bundle ? 'unchanged' : 'stored'
}

/** A tunnel as both stores keep it: JSON with a fixed key order, optional port only when set. */
export function tunnelJson(t: TunnelRecord): string {
  const { trustDomain, name, spiffeId, agent, service, port, createdAt } = t
  return JSON.stringify({
    trustDomain,
    name,
    spiffeId,
    agent,
    service,
    ...(port === undefined ? {} : { port }),
    createdAt,
  })
}
