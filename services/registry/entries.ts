// Registration entries: which workloads (by selectors, under which parent) get which SPIFFE ID.

import { randomUUID } from 'node:crypto'
import { requireSpiffeId } from '../authority/require-spiffe-id.ts'
import type { Clock } from '../clock.ts'
import { quote, SigilError } from '../errors.ts'
import {
  type EntryFilter,
  type EntryPatch,
  type EntryRecord,
  type Store,
  StoreConflictError,
  type TrustDomainRecord,
} from '../store/store.ts'
import { TrustDomainService } from '../tenancy/trust-domains.ts'
import { validateDnsName } from './dns-name.ts'
import { parseSelector, sortSelectors } from './selectors.ts'

export interface EntryInput {
  spiffeId: string
  parentId: string
  selectors: string[]
  x509Ttl?: number
  jwtTtl?: number
  dnsNames?: string[]
  admin?: boolean
  downstream?: boolean
  federatesWith?: string[]
  /** ms since epoch; 0 or absent = never */
  expiresAt?: number
}

export class EntryService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async create(td: TrustDomainRecord, input: EntryInput): Promise<EntryRecord> {
    const now = this.clock.now()
    const entry: EntryRecord = {
      trustDomain: td.name,
      id: randomUUID(),
      spiffeId: input.spiffeId,
      parentId: input.parentId,
      selectors: [],
      x509Ttl: input.x509Ttl ?? td.settings.x509DefaultTtl,
      jwtTtl: input.jwtTtl ?? td.settings.jwtDefaultTtl,
      dnsNames: input.dnsNames ?? [],
      admin: input.admin ?? false,
      downstream: input.downstream ?? false,
      federatesWith: input.federatesWith ?? [],
      expiresAt: input.expiresAt ?? 0,
      createdAt: now,
      updatedAt: now,
      revision: 1,
    }
    entry.selectors = await this.#validate(td, entry, input.selectors, true)
    try {
      await this.store.createEntry(entry)
    } catch (err) {
      throw this.#conflict(err)
    }
    return entry
  }

  async get(td: TrustDomainRecord, id: string): Promise<EntryRecord> {
    const entry = await this.store.getEntry(td.name, id)
    if (!entry) {
      throw new SigilError(
        'ENTRY_NOT_FOUND',
        `registration entry ${quote(id)} does not exist in trust domain ${td.name}; list them with \`sigil entry list --trust-domain ${td.name}\``,
      )
    }
    return entry
  }

  list(td: TrustDomainRecord, filter: { spiffeId?: string; parentId?: string; selector?: string } = {}) {
    const f: EntryFilter = {}
    if (filter.spiffeId) f.spiffeId = filter.spiffeId
    if (filter.parentId) f.parentId = filter.parentId
    if (filter.selector) f.selector = parseSelector(filter.selector)
    return this.store.listEntries(td.name, f)
  }

  async update(td: TrustDomainRecord, id: string, patch: Partial<EntryInput>): Promise<EntryRecord> {
    const current = await this.get(td, id)
    const next: EntryRecord = { ...current }
    for (const [key, value] of Object.entries(patch)) {
      if (value !== undefined && key !== 'selectors')
        (next as unknown as Record<string, unknown>)[key] = value
    }
    const selectors = patch.selectors ?? current.selectors.map((s) => `${s.type}:${s.value}`)
    next.selectors = await this.#validate(td, next, selectors, patch.expiresAt !== undefined)
    const storePatch: EntryPatch = {
      spiffeId: next.spiffeId,
      parentId: next.parentId,
      selectors: next.selectors,
      x509Ttl: next.x509Ttl,
      jwtTtl: next.jwtTtl,
      dnsNames: next.dnsNames,
      admin: next.admin,
      downstream: next.downstream,
      federatesWith: next.federatesWith,
      expiresAt: next.expiresAt,
    }
    let updated: EntryRecord | undefined
    try {
      updated = await this.store.updateEntry(td.name, id, storePatch, this.clock.now())
    } catch (err) {
      throw this.#conflict(err)
    }
    if (!updated) return this.get(td, id)
    return updated
  }

  async delete(td: TrustDomainRecord, id: string): Promise<void> {
    if (!(await this.store.deleteEntry(td.name, id))) await this.get(td, id)
  }

  #conflict(err: unknown): unknown {
    if (err instanceof StoreConflictError) {
      return new SigilError(
        'ENTRY_EXISTS',
        'an entry with the same SPIFFE ID, parent ID and selectors already exists; update it instead',
        { cause: err },
      )
    }
    return err
  }

  // expiresAt is checked only when the request sets it: an expired entry stays editable.
  async #validate(td: TrustDomainRecord, entry: EntryRecord, selectors: string[], checkExpiry: boolean) {
    requireSpiffeId(entry.spiffeId, td.name, 'spiffeId', { workload: true })
    const parent = requireSpiffeId(entry.parentId, td.name, 'parentId')
    if (entry.spiffeId === entry.parentId) {
      throw new SigilError('ENTRY_INVALID', 'parentId must differ from spiffeId')
    }
    if (selectors.length === 0) {
      throw new SigilError(
        'ENTRY_INVALID',
        'an entry needs at least one selector, e.g. --selector unix:uid:1000',
      )
    }
    const parsed = sortSelectors(selectors.map(parseSelector))
    const seen = new Set<string>()
    for (const s of parsed) {
      const key = `${s.type}:${s.value}`
      if (seen.has(key)) throw new SigilError('SELECTOR_INVALID', `selector ${quote(key)} is given twice`)
      seen.add(key)
    }
    for (const [field, ttl, max] of [
      ['x509Ttl', entry.x509Ttl, td.settings.x509MaxTtl],
      ['jwtTtl', entry.jwtTtl, td.settings.jwtMaxTtl],
    ] as const) {
      if (!Number.isInteger(ttl) || ttl <= 0) {
        throw new SigilError('TTL_INVALID', `${field} must be a positive number of seconds`)
      }
      if (ttl > max) {
        throw new SigilError(
          'TTL_TOO_LONG',
          `${field} ${ttl}s exceeds trust domain ${td.name}'s maximum of ${max}s; lower it or raise the domain's limit`,
        )
      }
    }
    for (const name of entry.dnsNames) validateDnsName(name)
    for (const other of entry.federatesWith) {
      TrustDomainService.validateName(other)
      if (other === td.name)
        throw new SigilError('ENTRY_INVALID', "federatesWith must not name the entry's own trust domain")
    }
    if (checkExpiry && entry.expiresAt !== 0 && entry.expiresAt <= this.clock.now()) {
      throw new SigilError('ENTRY_INVALID', 'expiresAt is in the past; give a future time or omit it')
    }
    await this.#requireParent(td, parent.path, entry.parentId)
    return parsed
  }

  // A parent is an agent (which may attest later, so it need not exist yet), the server, or an existing
  // entry's SPIFFE ID (a node alias). Anything else is almost certainly a typo that would match nothing.
  async #requireParent(td: TrustDomainRecord, path: string, parentId: string): Promise<void> {
    if (path.startsWith('/sigil/agent/') || path === '/sigil/server') return
    const parents = await this.store.listEntries(td.name, { spiffeId: parentId })
    if (parents.length > 0) return
    throw new SigilError(
      'ENTRY_PARENT_NOT_FOUND',
      `parentId ${quote(parentId)} is neither an agent ID (spiffe://${td.name}/sigil/agent/...), the server (spiffe://${td.name}/sigil/server), nor the SPIFFE ID of an existing entry`,
    )
  }
}
