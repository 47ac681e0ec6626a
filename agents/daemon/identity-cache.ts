// The agent's identity cache: the entries it may serve, an X509-SVID (key in memory) for each, the
// bundles (its own trust domain's and the federated ones its entries name), and cached JWT-SVIDs. The
// Workload API reads it through IdentitySource; the agent writes it.

import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose'
import { pemBlocks } from '../../services/authority/pem.ts'
import type {
  IdentitySource,
  JwtSvidMaterial,
  Selector,
  X509SvidMaterial,
} from '../workload-api/identity-source.ts'

export interface EntryState {
  id: string
  spiffeId: string
  parentId: string
  selectors: string[]
  x509Ttl: number
  jwtTtl: number
  dnsNames: string[]
  federatesWith: string[]
  revision: number
}

export interface BundleState {
  pem: string
  spiffe: { keys: Array<Record<string, unknown>>; spiffe_sequence: number }
}

/** Foreign trust domain -> its bundle, as the server pushes them (only those the entries federate with). */
export type FederatedBundles = Record<string, BundleState>

export interface CachedSvid {
  entryId: string
  revision: number
  spiffeId: string
  certChainDer: Buffer[]
  privateKeyDer: Buffer
  notBefore: number
  notAfter: number
  /** When to rotate: half the lifetime, with jitter. */
  rotateAt: number
}

interface CachedJwt {
  token: string
  expiresAt: number
}

export type JwtFetcher = (
  entryId: string,
  audience: string[],
) => Promise<{ token: string; expiresAt: number }>

export class IdentityCache implements IdentitySource {
  readonly trustDomain: string
  #entries = new Map<string, EntryState>()
  #svids = new Map<string, CachedSvid>()
  #bundle: BundleState | undefined
  #roots: Buffer[] = []
  #federated = new Map<string, { bundle: BundleState; roots: Buffer[] }>()
  #jwts = new Map<string, CachedJwt>()
  #listeners = new Set<() => void>()

  constructor(
    trustDomain: string,
    private readonly fetchJwt: JwtFetcher,
    private readonly now: () => number = Date.now,
  ) {
    this.trustDomain = trustDomain
  }

  /** Replaces the entry set; returns the entries whose SVID is missing or outdated. */
  setEntries(entries: EntryState[]): EntryState[] {
    this.#entries = new Map(entries.map((e) => [e.id, e]))
    let dropped = false
    for (const id of [...this.#svids.keys()]) {
      if (!this.#entries.has(id)) {
        this.#svids.delete(id)
        dropped = true
      }
    }
    if (dropped) this.#changed()
    return entries.filter((e) => this.#svids.get(e.id)?.revision !== e.revision)
  }

  entries(): EntryState[] {
    return [...this.#entries.values()]
  }

  setBundle(bundle: BundleState): void {
    if (
      this.#bundle?.spiffe.spiffe_sequence === bundle.spiffe.spiffe_sequence &&
      this.#bundle.pem === bundle.pem
    )
      return
    this.#bundle = bundle
    this.#roots = pemBlocks(bundle.pem, 'CERTIFICATE')
    this.#changed()
  }

  /** Replaces the federated bundles; a foreign trust domain no longer listed is dropped. */
  setFederatedBundles(bundles: FederatedBundles): void {
    const next = new Map<string, { bundle: BundleState; roots: Buffer[] }>()
    let changed = Object.keys(bundles).length !== this.#federated.size
    for (const [td, bundle] of Object.entries(bundles)) {
      if (td === this.trustDomain) continue
      const held = this.#federated.get(td)
      if (
        held &&
        held.bundle.pem === bundle.pem &&
        JSON.stringify(held.bundle.spiffe) === JSON.stringify(bundle.spiffe)
      ) {
        next.set(td, held)
        continue
      }
      changed = true
      next.set(td, { bundle, roots: pemBlocks(bundle.pem, 'CERTIFICATE') })
    }
    this.#federated = next
    if (changed) this.#changed()
  }

  /** Foreign trust domain -> its roots (DER), for peers of federated trust domains. */
  federatedRoots(): Map<string, Buffer[]> {
    return new Map([...this.#federated].map(([td, f]) => [td, f.roots]))
  }

  putSvid(svid: CachedSvid): void {
    if (!this.#entries.has(svid.entryId)) return
    this.#svids.set(svid.entryId, svid)
    this.#changed()
  }

  /** SVIDs due for rotation (or expired) at `at`. */
  due(at: number): EntryState[] {
    return [...this.#entries.values()].filter((e) => {
      const svid = this.#svids.get(e.id)
      return !svid || svid.rotateAt <= at
    })
  }

  nextRotation(): number | undefined {
    let next: number | undefined
    for (const s of this.#svids.values()) if (next === undefined || s.rotateAt < next) next = s.rotateAt
    return next
  }

  svidCount(): number {
    return this.#svids.size
  }

  /** The current SVID of an identity (any entry with that SPIFFE ID), for the services a proxy offers. */
  svidById(spiffeId: string): X509SvidMaterial | undefined {
    const now = this.now()
    for (const entry of this.#entries.values()) {
      if (entry.spiffeId !== spiffeId) continue
      const svid = this.#svids.get(entry.id)
      if (!svid || svid.notAfter <= now) continue
      return {
        spiffeId: svid.spiffeId,
        certChainDer: svid.certChainDer,
        privateKeyDer: svid.privateKeyDer,
        bundleDer: this.#roots,
        federatesWith: entry.federatesWith,
        expiresAt: svid.notAfter,
      }
    }
    return undefined
  }

  /** The selectors of every entry for this identity. */
  selectorsOf(spiffeId: string): string[] {
    const out = new Set<string>()
    for (const entry of this.#entries.values())
      if (entry.spiffeId === spiffeId) for (const s of entry.selectors) out.add(s)
    return [...out]
  }

  roots(): Buffer[] {
    return this.#roots
  }

  // --- IdentitySource --------------------------------------------------------------------------------

  x509Svids(selectors: Selector[]): X509SvidMaterial[] {
    const now = this.now()
    const have = new Set(selectors.map((s) => `${s.type}:${s.value}`))
    const out: X509SvidMaterial[] = []
    for (const entry of this.#matching(have)) {
      const svid = this.#svids.get(entry.id)
      if (!svid || svid.notAfter <= now) continue
      out.push({
        spiffeId: svid.spiffeId,
        certChainDer: svid.certChainDer,
        privateKeyDer: svid.privateKeyDer,
        bundleDer: this.#roots,
        federatesWith: entry.federatesWith,
        expiresAt: svid.notAfter,
      })
    }
    return out
  }

  x509Bundles(): Map<string, Buffer[]> {
    const out = new Map<string, Buffer[]>(this.#roots.length ? [[this.trustDomain, this.#roots]] : [])
    for (const [td, f] of this.#federated) if (f.roots.length) out.set(td, f.roots)
    return out
  }

  async jwtSvids(selectors: Selector[], audience: string[], spiffeId?: string): Promise<JwtSvidMaterial[]> {
    const have = new Set(selectors.map((s) => `${s.type}:${s.value}`))
    const entries = this.#matching(have).filter((e) => !spiffeId || e.spiffeId === spiffeId)
    const now = this.now()
    const out: JwtSvidMaterial[] = []
    for (const entry of entries) {
      const key = `${entry.id}\u0000${[...audience].sort().join('\u0000')}`
      let cached = this.#jwts.get(key)
      // Reuse a JWT-SVID until half its lifetime is gone.
      if (!cached || cached.expiresAt - now < (entry.jwtTtl * 1000) / 2) {
        cached = await this.fetchJwt(entry.id, audience)
        this.#jwts.set(key, cached)
      }
      out.push({ spiffeId: entry.spiffeId, token: cached.token })
    }
    return out
  }

  jwtBundles(): Map<string, { keys: Record<string, unknown>[] }> {
    const jwtKeys = (b: BundleState | undefined) => (b?.spiffe.keys ?? []).filter((k) => k.use === 'jwt-svid')
    const out = new Map([[this.trustDomain, { keys: jwtKeys(this.#bundle) }]])
    for (const [td, f] of this.#federated) out.set(td, { keys: jwtKeys(f.bundle) })
    return out
  }

  /**
   * Validates a JWT-SVID of this trust domain or a federated one, against the keys of the trust domain
   * its subject names only: one trust domain's key never vouches for another's identities. With
   * `trustDomains`, only those are accepted (the caller's own and those its entries federate with).
   */
  async validateJwt(
    token: string,
    audience: string,
    trustDomains?: ReadonlySet<string>,
  ): Promise<{ spiffeId: string; claims: Record<string, unknown> }> {
    let claimed: unknown
    try {
      claimed = decodeJwt(token).sub
    } catch (err) {
      throw new Error(`not a JWT: ${(err as Error).message}`)
    }
    if (typeof claimed !== 'string' || !claimed.startsWith('spiffe://'))
      throw new Error('JWT-SVID has no SPIFFE ID subject')
    const td = claimed.slice('spiffe://'.length).split('/')[0]!
    if (trustDomains && !trustDomains.has(td))
      throw new Error(
        `trust domain ${JSON.stringify(td)} is not federated with the calling workload (add it to its entry's federatesWith)`,
      )
    const bundle = this.jwtBundles().get(td)
    if (!bundle) throw new Error(`no bundle of trust domain ${JSON.stringify(td)} is held (not federated)`)
    const keys = bundle.keys.map(({ use: _use, ...k }) => k)
    // jose only accepts keys without `use` or with use "sig"; SPIFFE marks them "jwt-svid".
    const { payload } = await jwtVerify(token, createLocalJWKSet({ keys: keys as never }), {
      audience,
      algorithms: ['ES256', 'ES384', 'RS256', 'RS384', 'PS256', 'PS384'],
      currentDate: new Date(this.now()),
    })
    const sub = payload.sub
    if (typeof sub !== 'string' || sub !== claimed) throw new Error('JWT-SVID has no SPIFFE ID subject')
    return { spiffeId: sub, claims: payload as Record<string, unknown> }
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  #matching(have: Set<string>): EntryState[] {
    return [...this.#entries.values()].filter(
      (e) => e.selectors.length > 0 && e.selectors.every((s) => have.has(s)),
    )
  }

  #changed(): void {
    for (const listener of this.#listeners) {
      try {
        listener()
      } catch {
        // a listener's failure must not stop the others
      }
    }
  }
}
