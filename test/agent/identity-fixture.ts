// A fixed, in-memory IdentitySource for Workload API tests, holding SVIDs minted by a real Sigil CA (the
// trust service built in-process, through its /v1 API). Entries match as the agent's will: an entry
// applies to a workload whose selectors include all of the entry's.

import { createLocalJWKSet, jwtVerify } from 'jose'
import type {
  IdentitySource,
  JwtSvidMaterial,
  Selector,
  X509SvidMaterial,
} from '../../agents/workload-api/identity-source.ts'
import { pemBlocks } from '../../services/authority/pem.ts'
import { buildTestApp, type TestApp } from '../helpers/app.ts'
import { makeCsr } from '../helpers/csr.ts'

export interface FixtureEntry {
  spiffeId: string
  /** TYPE:VALUE, e.g. unix:uid:1000 */
  selectors: string[]
  federatesWith?: string[]
  hint?: string
}

export function selector(s: string): Selector {
  const i = s.indexOf(':')
  return { type: s.slice(0, i), value: s.slice(i + 1) }
}

function trustDomainOf(spiffeId: string): string {
  return new URL(spiffeId).host
}

/** A Sigil trust service in this process with some trust domains, minting through its API. */
export class TestCa {
  private constructor(readonly app: TestApp) {}

  static async start(t: { teardown(fn: () => unknown): void }, trustDomains: string[]): Promise<TestCa> {
    const app = await buildTestApp(t)
    for (const name of trustDomains) {
      const res = await app.call('POST', '/v1/trust-domains', { name })
      if (res.statusCode !== 201) throw new Error(`trust domain ${name}: ${res.body}`)
    }
    return new TestCa(app)
  }

  async mintX509(
    spiffeId: string,
    ttl = 3600,
  ): Promise<Omit<X509SvidMaterial, 'federatesWith' | 'bundleDer'>> {
    const csr = await makeCsr('ec-p256')
    const td = trustDomainOf(spiffeId)
    const res = await this.app.call('POST', `/v1/trust-domains/${td}/svids/x509`, {
      csr: csr.pem,
      spiffeId,
      ttl,
    })
    if (res.statusCode !== 200) throw new Error(`mint ${spiffeId}: ${res.body}`)
    return {
      spiffeId,
      certChainDer: pemBlocks(res.json.certChainPem, 'CERTIFICATE'),
      privateKeyDer: pemBlocks(csr.keyPem, 'PRIVATE KEY')[0]!,
      expiresAt: Date.parse(res.json.expiresAt),
    }
  }

  async mintJwt(spiffeId: string, audience: string[]): Promise<string> {
    const res = await this.app.call('POST', `/v1/trust-domains/${trustDomainOf(spiffeId)}/svids/jwt`, {
      spiffeId,
      audience,
    })
    if (res.statusCode !== 200) throw new Error(`mint JWT ${spiffeId}: ${res.body}`)
    return res.json.token
  }

  async bundle(trustDomain: string): Promise<{ rootsDer: Buffer[]; jwtKeys: Record<string, unknown>[] }> {
    const res = await this.app.call('GET', `/v1/trust-domains/${trustDomain}/bundle?format=spiffe`)
    const keys = res.json.keys as Array<Record<string, unknown>>
    return {
      rootsDer: keys
        .filter((k) => k.use === 'x509-svid')
        .map((k) => Buffer.from((k.x5c as string[])[0]!, 'base64')),
      jwtKeys: keys.filter((k) => k.use === 'jwt-svid'),
    }
  }

  /** Rotates the trust domain's intermediate and JWT key (a new intermediate signs from now on). */
  async rotate(trustDomain: string): Promise<void> {
    const res = await this.app.call('POST', `/v1/trust-domains/${trustDomain}/authority/rotate`, {})
    if (res.statusCode >= 300) throw new Error(`rotate ${trustDomain}: ${res.body}`)
  }
}

export class FixedIdentitySource implements IdentitySource {
  #entries: FixtureEntry[] = []
  #svids = new Map<string, X509SvidMaterial>()
  #x509Bundles = new Map<string, Buffer[]>()
  #jwtBundles = new Map<string, { keys: Record<string, unknown>[] }>()
  readonly #listeners = new Set<() => void>()
  /** Delay before jwtSvids answers (to test callers that leave mid-call). */
  jwtDelayMs = 0

  private constructor(
    readonly ca: TestCa,
    readonly trustDomains: string[],
  ) {}

  static async create(
    ca: TestCa,
    trustDomains: string[],
    entries: FixtureEntry[],
  ): Promise<FixedIdentitySource> {
    const source = new FixedIdentitySource(ca, trustDomains)
    await source.setEntries(entries, false)
    return source
  }

  get listenerCount(): number {
    return this.#listeners.size
  }

  /** Replaces the entries, mints an X509-SVID for each, refreshes the bundles, and notifies. */
  async setEntries(entries: FixtureEntry[], notify = true): Promise<void> {
    const svids = new Map<string, X509SvidMaterial>()
    for (const e of entries) {
      const minted = await this.ca.mintX509(e.spiffeId)
      const material: X509SvidMaterial = { ...minted, bundleDer: [], federatesWith: e.federatesWith ?? [] }
      if (e.hint) material.hint = e.hint
      svids.set(e.spiffeId, material)
    }
    // After minting: a trust domain's first issuance creates its JWT key, which the bundle then holds.
    for (const td of this.trustDomains) {
      await this.ca.mintJwt(`spiffe://${td}/sigil-fixture`, ['fixture'])
      const b = await this.ca.bundle(td)
      this.#x509Bundles.set(td, b.rootsDer)
      this.#jwtBundles.set(td, { keys: b.jwtKeys })
    }
    for (const svid of svids.values())
      svid.bundleDer = this.#x509Bundles.get(trustDomainOf(svid.spiffeId)) ?? []
    this.#entries = entries
    this.#svids = svids
    if (notify) this.notify()
  }

  /** Mints new X509-SVIDs for the same entries (a rotation) and notifies. */
  reissue(): Promise<void> {
    return this.setEntries(this.#entries)
  }

  notify(): void {
    for (const listener of this.#listeners) listener()
  }

  #matching(selectors: Selector[]): FixtureEntry[] {
    const have = new Set(selectors.map((s) => `${s.type}:${s.value}`))
    return this.#entries.filter((e) => e.selectors.every((s) => have.has(s)))
  }

  x509Svids(selectors: Selector[]): X509SvidMaterial[] {
    return this.#matching(selectors).map((e) => this.#svids.get(e.spiffeId)!)
  }

  x509Bundles(): Map<string, Buffer[]> {
    return this.#x509Bundles
  }

  async jwtSvids(selectors: Selector[], audience: string[], spiffeId?: string): Promise<JwtSvidMaterial[]> {
    if (this.jwtDelayMs) await new Promise((r) => setTimeout(r, this.jwtDelayMs))
    const entries = this.#matching(selectors).filter((e) => !spiffeId || e.spiffeId === spiffeId)
    return Promise.all(
      entries.map(async (e) => {
        const jwt: JwtSvidMaterial = {
          spiffeId: e.spiffeId,
          token: await this.ca.mintJwt(e.spiffeId, audience),
        }
        if (e.hint) jwt.hint = e.hint
        return jwt
      }),
    )
  }

  jwtBundles(): Map<string, { keys: Record<string, unknown>[] }> {
    return this.#jwtBundles
  }

  async validateJwt(token: string, audience: string, trustDomains?: ReadonlySet<string>) {
    // jose only picks keys whose `use` is absent or "sig"; SPIFFE bundles say "jwt-svid".
    const keys = [...this.#jwtBundles]
      .filter(([td]) => !trustDomains || trustDomains.has(td))
      .flatMap(([, b]) => b.keys)
      .map(({ use: _use, ...k }) => k)
    const { payload } = await jwtVerify(token, createLocalJWKSet({ keys: keys as never }), { audience })
    if (!payload.sub?.startsWith('spiffe://')) throw new Error('the token has no SPIFFE ID subject')
    return { spiffeId: payload.sub, claims: payload as Record<string, unknown> }
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }
}
