// The authority: one per process, serving every trust domain of the store.
//
// - Each trust domain has root CAs in the store (keys sealed by the KeyManager). The roots are the X.509
//   part of the bundle; they change only when a root nears expiry, so the bundle stays stable.
// - Each process signs X509-SVIDs with its own intermediate CA per trust domain, kept only in memory and
//   rotated prepared -> active -> retired. An SVID's notAfter never exceeds its intermediate's, so an
//   SVID issued before a rotation keeps verifying until it expires.
// - Each process signs JWT-SVIDs with its own JWT key per trust domain. A key's public half is published
//   to the bundle when it is prepared, before it signs anything, so validators already know it.

import { createHash, createPrivateKey, type KeyObject, randomBytes, randomUUID } from 'node:crypto'
import { exportJWK, SignJWT } from 'jose'
import type { Clock } from '../clock.ts'
import type { JwtKeyRecord, KeyType, RootCaRecord, Store, TrustDomainRecord } from '../store/store.ts'
import { createIntermediateCaCertificate, createRootCaCertificate, generateKeyPair } from './ca-certs.ts'
import type { KeyManager } from './key-manager.ts'
import { derToPem, pemToDer } from './pem.ts'
import { SigningPool } from './signing-pool.ts'

export type SlotState = 'prepared' | 'active' | 'retired'

interface Intermediate {
  id: string
  trustDomain: string
  rootId: string
  certDer: Buffer
  notBefore: number
  notAfter: number
  state: SlotState
}

interface JwtKey {
  kid: string
  trustDomain: string
  privateKey: KeyObject
  notBefore: number
  notAfter: number
  state: SlotState
}

interface DomainState {
  intermediates: Intermediate[]
  jwtKeys: JwtKey[]
}

export interface X509IssueItem {
  csrDer: Buffer
  spiffeId: string
  dnsNames: string[]
  /** seconds */
  ttl: number
}

export type X509IssueResult =
  | { ok: true; spiffeId: string; serial: string; chainDer: Buffer[]; notAfter: number }
  | { ok: false; code: string; message: string }

export interface AuthorityStatus {
  roots: Array<{ id: string; notBefore: number; notAfter: number }>
  intermediates: Array<{ id: string; state: SlotState; notBefore: number; notAfter: number; rootId: string }>
  jwtKeys: Array<{ kid: string; state: SlotState; notBefore: number; notAfter: number }>
  /** When this process will next activate a new intermediate (ms), if it has one. */
  nextRotation?: number
}

export interface AuthorityOptions {
  store: Store
  keys: KeyManager
  clock: Clock
  /** seconds */
  intermediateTtl: number
  /** seconds */
  jwtKeyTtl: number
  signingWorkers: number
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void }
}

// Prepare the next key at half its predecessor's life, activate it at two thirds: the gap is when the
// bundle (for JWT keys) propagates before the new key signs anything.
const PREPARE_AT = 1 / 2
const ACTIVATE_AT = 2 / 3
// A new root is added to the bundle when the newest one has less than this fraction of its life left.
const ROOT_RENEW_AT = 5 / 6

function rootAad(td: string, id: string): string {
  return `root-ca:${td}:${id}`
}

export class Authority {
  readonly #opts: AuthorityOptions
  readonly #domains = new Map<string, Promise<DomainState>>()
  readonly #pool: SigningPool

  constructor(opts: AuthorityOptions) {
    this.#opts = opts
    this.#pool = new SigningPool({ size: opts.signingWorkers })
  }

  /** Creates the first root CA of a new trust domain (not yet stored: the caller stores it with the domain). */
  async createRoot(trustDomain: string, keyType: KeyType, caTtl: number): Promise<RootCaRecord> {
    const now = this.#opts.clock.now()
    const pair = await generateKeyPair(keyType)
    const notBefore = now - 60_000
    const notAfter = now + caTtl * 1000
    const certDer = await createRootCaCertificate({
      trustDomain,
      keyPair: pair,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
    })
    const id = createHash('sha256').update(certDer).digest('hex').slice(0, 16)
    const pkcs8 = pair.privateKey.export({ format: 'der', type: 'pkcs8' })
    const sealedKey = await this.#opts.keys.seal(pkcs8, rootAad(trustDomain, id))
    pkcs8.fill(0)
    return {
      trustDomain,
      id,
      certPem: derToPem(certDer, 'CERTIFICATE'),
      sealedKey,
      notBefore,
      notAfter,
      createdAt: now,
    }
  }

  async issueX509(td: TrustDomainRecord, items: X509IssueItem[]): Promise<X509IssueResult[]> {
    const state = await this.#state(td)
    const issuer = state.intermediates.find((i) => i.state === 'active')!
    const now = this.#opts.clock.now()
    const batch = items.map((item) => ({
      csrDer: item.csrDer,
      spiffeId: item.spiffeId,
      dnsNames: item.dnsNames,
      notBefore: now - 30_000,
      notAfter: Math.min(now + item.ttl * 1000, issuer.notAfter),
    }))
    const signed = await this.#pool.issue(issuer.id, batch)
    const results: X509IssueResult[] = []
    const records = []
    for (let i = 0; i < signed.length; i++) {
      const r = signed[i]!
      const item = batch[i]!
      if (!r.ok) {
        results.push({ ok: false, code: r.code, message: r.message })
        continue
      }
      results.push({
        ok: true,
        spiffeId: item.spiffeId,
        serial: r.serialHex,
        chainDer: [r.der, issuer.certDer],
        notAfter: item.notAfter,
      })
      records.push({
        trustDomain: td.name,
        kind: 'x509' as const,
        serial: r.serialHex,
        spiffeId: item.spiffeId,
        issuedAt: now,
        expiresAt: item.notAfter,
      })
    }
    if (records.length > 0) await this.#opts.store.recordIssuances(records)
    return results
  }

  async issueJwt(
    td: TrustDomainRecord,
    req: { spiffeId: string; audience: string[]; ttl: number },
  ): Promise<{ token: string; expiresAt: number; kid: string }> {
    const state = await this.#state(td)
    const key = state.jwtKeys.find((k) => k.state === 'active')!
    const now = this.#opts.clock.now()
    const exp = Math.floor(Math.min(now + req.ttl * 1000, key.notAfter) / 1000)
    const iat = Math.floor(now / 1000)
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
      .setSubject(req.spiffeId)
      .setAudience(req.audience.length === 1 ? req.audience[0]! : req.audience)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(key.privateKey)
    await this.#opts.store.recordIssuances([
      {
        trustDomain: td.name,
        kind: 'jwt',
        serial: createHash('sha256').update(token).digest('hex').slice(0, 32),
        spiffeId: req.spiffeId,
        issuedAt: now,
        expiresAt: exp * 1000,
      },
    ])
    return { token, expiresAt: exp * 1000, kid: key.kid }
  }

  /** The trust domain's bundle: every root and JWT key that has not expired, and the sequence. */
  async bundle(
    trustDomain: string,
  ): Promise<{ roots: RootCaRecord[]; jwtKeys: JwtKeyRecord[]; sequence: number }> {
    const now = this.#opts.clock.now()
    const [roots, jwtKeys, sequence] = await Promise.all([
      this.#opts.store.listRootCas(trustDomain),
      this.#opts.store.listJwtKeys(trustDomain),
      this.#opts.store.getBundleSequence(trustDomain),
    ])
    return {
      roots: roots.filter((r) => r.notAfter > now),
      jwtKeys: jwtKeys.filter((k) => k.notAfter > now),
      sequence,
    }
  }

  async status(td: TrustDomainRecord): Promise<AuthorityStatus> {
    const state = await this.#state(td)
    const roots = await this.#opts.store.listRootCas(td.name)
    const active = state.intermediates.find((i) => i.state === 'active')
    const status: AuthorityStatus = {
      roots: roots.map((r) => ({ id: r.id, notBefore: r.notBefore, notAfter: r.notAfter })),
      intermediates: state.intermediates.map(({ id, state, notBefore, notAfter, rootId }) => ({
        id,
        state,
        notBefore,
        notAfter,
        rootId,
      })),
      jwtKeys: state.jwtKeys.map(({ kid, state, notBefore, notAfter }) => ({
        kid,
        state,
        notBefore,
        notAfter,
      })),
    }
    if (active) {
      status.nextRotation = active.notBefore + (active.notAfter - active.notBefore) * ACTIVATE_AT
    }
    return status
  }

  /**
   * Prepares and activates a new intermediate and JWT key now (an operator's or a test's rotation). With
   * `root`, a new root CA is added to the bundle first and the new intermediate is signed under it; the
   * old root stays in the bundle until it expires, so SVIDs issued under it keep verifying.
   */
  async rotate(td: TrustDomainRecord, opts: { root?: boolean } = {}): Promise<AuthorityStatus> {
    const state = await this.#state(td)
    if (opts.root) {
      const root = await this.createRoot(td.name, td.settings.keyType, td.settings.caTtl)
      await this.#opts.store.addRootCa(root)
      this.#opts.log?.info({ trustDomain: td.name, root: root.id }, 'new root CA added by request')
      // The intermediate prepared under the old root (if any) is replaced by one under the new root.
      state.intermediates = state.intermediates.filter((i) => i.state !== 'prepared')
    }
    if (!state.intermediates.some((i) => i.state === 'prepared')) await this.#prepareIntermediate(td, state)
    if (!state.jwtKeys.some((k) => k.state === 'prepared')) await this.#prepareJwtKey(td, state)
    this.#activate(state.intermediates)
    this.#activate(state.jwtKeys)
    this.#opts.log?.info({ trustDomain: td.name }, 'authority rotated by request')
    return this.status(td)
  }

  /**
   * SVIDs (X.509 and JWT) issued per clock hour over the last `hours` hours, oldest first; the last
   * bucket is the hour in progress. From the issuance records every replica writes.
   */
  async issuedPerHour(trustDomain: string, hours: number): Promise<Array<{ start: number; count: number }>> {
    const hour = 3600_000
    const current = Math.floor(this.#opts.clock.now() / hour) * hour
    const starts = Array.from({ length: hours }, (_, i) => current - (hours - 1 - i) * hour)
    const since = await Promise.all(starts.map((s) => this.#opts.store.countIssuances(trustDomain, s)))
    return starts.map((start, i) => ({ start, count: since[i]! - (since[i + 1] ?? 0) }))
  }

  /** Advances rotation for every trust domain this process has loaded. Call it periodically. */
  async tick(): Promise<void> {
    const now = this.#opts.clock.now()
    for (const [name, pending] of this.#domains) {
      const state = await pending.catch(() => undefined)
      if (!state) continue
      const td = await this.#opts.store.getTrustDomain(name)
      if (!td) {
        this.forget(name)
        continue
      }
      await this.#advance(td, state, now)
    }
  }

  /** Drops a trust domain's keys from memory (after it was deleted). */
  forget(trustDomain: string): void {
    const pending = this.#domains.get(trustDomain)
    this.#domains.delete(trustDomain)
    pending
      ?.then((state) => {
        for (const i of state.intermediates) this.#pool.removeIssuer(i.id)
      })
      .catch(() => {})
  }

  async close(): Promise<void> {
    this.#domains.clear()
    await this.#pool.close()
  }

  #state(td: TrustDomainRecord): Promise<DomainState> {
    let pending = this.#domains.get(td.name)
    if (!pending) {
      pending = this.#initialize(td)
      this.#domains.set(td.name, pending)
      pending.catch(() => this.#domains.delete(td.name))
    }
    return pending
  }

  async #initialize(td: TrustDomainRecord): Promise<DomainState> {
    const state: DomainState = { intermediates: [], jwtKeys: [] }
    await this.#prepareIntermediate(td, state)
    await this.#prepareJwtKey(td, state)
    this.#activate(state.intermediates)
    this.#activate(state.jwtKeys)
    return state
  }

  async #advance(td: TrustDomainRecord, state: DomainState, now: number): Promise<void> {
    await this.#renewRootIfDue(td, now)
    const due = (slot: { notBefore: number; notAfter: number }, at: number) =>
      now >= slot.notBefore + (slot.notAfter - slot.notBefore) * at
    const activeInt = state.intermediates.find((i) => i.state === 'active')
    if (activeInt && due(activeInt, PREPARE_AT) && !state.intermediates.some((i) => i.state === 'prepared')) {
      await this.#prepareIntermediate(td, state)
    }
    if (activeInt && due(activeInt, ACTIVATE_AT)) this.#activate(state.intermediates)
    const activeKey = state.jwtKeys.find((k) => k.state === 'active')
    if (activeKey && due(activeKey, PREPARE_AT) && !state.jwtKeys.some((k) => k.state === 'prepared')) {
      await this.#prepareJwtKey(td, state)
    }
    if (activeKey && due(activeKey, ACTIVATE_AT)) this.#activate(state.jwtKeys)
    for (const i of state.intermediates.filter((i) => i.state === 'retired' && i.notAfter <= now)) {
      this.#pool.removeIssuer(i.id)
    }
    state.intermediates = state.intermediates.filter((i) => i.notAfter > now)
    state.jwtKeys = state.jwtKeys.filter((k) => k.notAfter > now)
    await this.#opts.store.pruneJwtKeys(td.name, now)
  }

  /** prepared becomes active, active becomes retired. */
  #activate(slots: Array<{ state: SlotState }>): void {
    const prepared = slots.find((s) => s.state === 'prepared')
    if (!prepared) return
    for (const s of slots) if (s.state === 'active') s.state = 'retired'
    prepared.state = 'active'
  }

  async #signingRoot(td: TrustDomainRecord): Promise<{ record: RootCaRecord; key: KeyObject }> {
    const now = this.#opts.clock.now()
    const roots = (await this.#opts.store.listRootCas(td.name)).filter(
      (r) => r.notBefore <= now && r.notAfter > now,
    )
    const record = roots.sort((a, b) => b.notAfter - a.notAfter)[0]
    if (!record) throw new Error(`trust domain ${td.name} has no valid root CA`)
    const pkcs8 = await this.#opts.keys.unseal(record.sealedKey, rootAad(td.name, record.id))
    const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
    pkcs8.fill(0)
    return { record, key }
  }

  async #prepareIntermediate(td: TrustDomainRecord, state: DomainState): Promise<void> {
    const now = this.#opts.clock.now()
    const root = await this.#signingRoot(td)
    const pair = await generateKeyPair(td.settings.keyType)
    const notBefore = now - 30_000
    const notAfter = Math.min(now + this.#opts.intermediateTtl * 1000, root.record.notAfter)
    const certDer = await createIntermediateCaCertificate({
      trustDomain: td.name,
      subjectPublicKey: pair.publicKey,
      issuerCertDer: pemToDer(root.record.certPem),
      issuerKey: root.key,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
    })
    const id = randomUUID()
    this.#pool.setIssuer(id, certDer, pair.privateKey)
    state.intermediates.push({
      id,
      trustDomain: td.name,
      rootId: root.record.id,
      certDer,
      notBefore,
      notAfter,
      state: 'prepared',
    })
    this.#opts.log?.info({ trustDomain: td.name, intermediate: id }, 'intermediate CA prepared')
  }

  async #prepareJwtKey(td: TrustDomainRecord, state: DomainState): Promise<void> {
    const now = this.#opts.clock.now()
    const pair = await generateKeyPair('ec-p256')
    const kid = randomBytes(16).toString('base64url')
    const notAfter = now + this.#opts.jwtKeyTtl * 1000
    const jwk = await exportJWK(pair.publicKey)
    await this.#opts.store.publishJwtKey({
      trustDomain: td.name,
      kid,
      publicJwk: { ...jwk, kid, use: 'jwt-svid' },
      notAfter,
      createdAt: now,
    })
    state.jwtKeys.push({
      kid,
      trustDomain: td.name,
      privateKey: pair.privateKey,
      notBefore: now,
      notAfter,
      state: 'prepared',
    })
    this.#opts.log?.info({ trustDomain: td.name, kid }, 'JWT signing key prepared and published')
  }

  async #renewRootIfDue(td: TrustDomainRecord, now: number): Promise<void> {
    const roots = await this.#opts.store.listRootCas(td.name)
    const newest = roots.sort((a, b) => b.notAfter - a.notAfter)[0]
    if (!newest || now < newest.notBefore + (newest.notAfter - newest.notBefore) * ROOT_RENEW_AT) return
    // Replicas race here; the meta key makes exactly one of them add the successor root.
    if (!(await this.#opts.store.setMetaIfAbsent(`root-renewal:${td.name}:${newest.id}`, String(now)))) return
    const root = await this.createRoot(td.name, td.settings.keyType, td.settings.caTtl)
    await this.#opts.store.addRootCa(root)
    this.#opts.log?.info({ trustDomain: td.name, root: root.id }, 'new root CA added to the bundle')
  }
}
