// Entries live in Redis as hashes whose fields are JSON texts written by this module, so that a Lua script
// can patch single fields and derive index keys from them without ever re-encoding JSON itself.
import { canonicalSelectors, patchEntries, selectorKey } from './canonical.ts'
import { sha1 } from './redis-keys.ts'
import type { EntryPatch, EntryRecord, Selector } from './store.ts'

const FIELDS = [
  'trustDomain',
  'id',
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
  'createdAt',
  'updatedAt',
  'revision',
] as const satisfies readonly (keyof EntryRecord)[]

/**
 * Internal fields: selCanon is the selector part of the identity (canonical.ts), selIdx the
 * space-separated index hashes of the distinct selectors.
 */
function selectorFields(selectors: readonly Selector[]): string[] {
  const hashes = new Set(selectors.map((s) => sha1(selectorKey(s))))
  return ['selCanon', canonicalSelectors(selectors), 'selIdx', [...hashes].join(' ')]
}

function normalize(field: string, value: unknown): unknown {
  if (field === 'selectors') return (value as Selector[]).map((s) => ({ type: s.type, value: s.value }))
  return value
}

/** Flat field/value list for HSET. */
export function encodeEntry(entry: EntryRecord): string[] {
  const out: string[] = []
  for (const field of FIELDS) out.push(field, JSON.stringify(normalize(field, entry[field])))
  out.push(...selectorFields(entry.selectors))
  return out
}

/** Flat field/value list of the patched fields (updatedAt and revision are the script's). */
export function encodePatch(patch: EntryPatch): string[] {
  const out: string[] = []
  for (const [field, value] of patchEntries(patch)) out.push(field, JSON.stringify(normalize(field, value)))
  if (patch.selectors !== undefined) out.push(...selectorFields(patch.selectors))
  return out
}

export function decodeEntry(hash: Record<string, string>): EntryRecord | undefined {
  if (Object.keys(hash).length === 0) return undefined
  const entry: Record<string, unknown> = {}
  for (const field of FIELDS) {
    const text = hash[field]
    if (text === undefined) throw new Error(`stored entry lacks ${field}`)
    entry[field] = JSON.parse(text)
  }
  return entry as unknown as EntryRecord
}

/** The identity hash the scripts compute from the stored texts (see `identity` in redis-scripts.ts). */
export function entryIdentity(spiffeIdText: string, parentIdText: string, selCanon: string): string {
  return sha1(`${spiffeIdText}\n${parentIdText}\n${selCanon}`)
}

export function spiffeIdIndex(spiffeId: string): `ix:i:${string}` {
  return `ix:i:${sha1(JSON.stringify(spiffeId))}`
}

export function parentIdIndex(parentId: string): `ix:p:${string}` {
  return `ix:p:${sha1(JSON.stringify(parentId))}`
}

export function selectorIndex(selector: Selector): `ix:s:${string}` {
  return `ix:s:${sha1(selectorKey(selector))}`
}

export function pairsToObject(flat: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  if (!Array.isArray(flat)) return out
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1])
  return out
}
