// The agent's life: attest, keep its own X509-SVID (renew at half-life; attest again when it expired
// during a long outage), follow the server's push stream of entries and bundles, and keep an X509-SVID
// for every entry it serves, rotated at half its lifetime (±10% jitter). While the server is down it
// backs off with jitter and keeps serving the cached SVIDs that are still valid.

import { X509Certificate } from 'node:crypto'
import type { AgentNodeAttestor } from '../attestation/node/node-attestor.ts'
import { type BundleState, type EntryState, type FederatedBundles, IdentityCache } from './identity-cache.ts'
import { keyAndCsr, toPem } from './keys.ts'
import { ServerError, TrustServiceClient } from './server-client.ts'

export interface AgentLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export interface AgentOptions {
  server: URL
  trustDomain: string
  /** PEM of the CA that signed the trust service's HTTPS certificate. */
  trustBundlePem: string
  attestor: AgentNodeAttestor
  log: AgentLog
  now?: () => number
  random?: () => number
}

interface OwnSvid {
  spiffeId: string
  notBefore: number
  notAfter: number
  serial: string
}

interface SyncState {
  agent: { spiffeId: string }
  entries: EntryState[]
  bundle: BundleState
  /** Bundles of the foreign trust domains this agent's entries federate with (absent from older servers). */
  federatedBundles?: FederatedBundles
  /** The trust domain's network policy, as the server's policy view (see services/policy). */
  policy?: unknown
}

const BACKOFF_MIN_MS = 500
const BACKOFF_MAX_MS = 30_000

export class Agent {
  readonly cache: IdentityCache
  readonly #opts: AgentOptions
  readonly #client: TrustServiceClient
  readonly #now: () => number
  readonly #random: () => number
  #own: OwnSvid | undefined
  #credentials: { certChainPem: string; keyPem: string } | undefined
  #policyListeners = new Set<(policy: unknown) => void>()
  #policy: unknown
  #closed = false
  #abort = new AbortController()
  #timers = new Set<NodeJS.Timeout>()
  #issuing: Promise<void> = Promise.resolve()
  #synced: Promise<void>
  #resolveSynced!: () => void

  constructor(opts: AgentOptions) {
    this.#opts = opts
    this.#now = opts.now ?? Date.now
    this.#random = opts.random ?? Math.random
    this.#client = new TrustServiceClient(opts.server, opts.trustBundlePem)
    this.cache = new IdentityCache(
      opts.trustDomain,
      (entryId, audience) => this.#fetchJwt(entryId, audience),
      this.#now,
    )
    this.#synced = new Promise((resolve) => {
      this.#resolveSynced = resolve
    })
  }

  /** The trust service's CA (PEM), as given at start: brokers present certificates from it too. */
  get trustBundlePem(): string {
    return this.#opts.trustBundlePem
  }

  get spiffeId(): string | undefined {
    return this.#own?.spiffeId
  }

  /** Attests (retrying with backoff), then follows the push stream in the background. */
  async start(): Promise<void> {
    await this.#retry('attestation', () => this.#attest())
    void this.#syncLoop()
    this.#schedule(() => this.#rotationTick(), 1000)
  }

  /** The agent's own SVID (certificate chain and key, PEM, in memory only), once attested. */
  credentials(): { spiffeId: string; certChainPem: string; keyPem: string } | undefined {
    if (!this.#own || !this.#credentials) return undefined
    return { spiffeId: this.#own.spiffeId, ...this.#credentials }
  }

  /** Calls `listener` with every policy the server pushes (and at once with the current one). */
  onPolicy(listener: (policy: unknown) => void): () => void {
    this.#policyListeners.add(listener)
    if (this.#policy !== undefined) listener(this.#policy)
    return () => this.#policyListeners.delete(listener)
  }

  /** Sends flow records to the trust service (the proxy's FlowReporter batches them). */
  async sendFlows(flows: unknown[]): Promise<void> {
    await this.#client.post('/v1/agent/flows', { flows })
  }

  /** Resolves once the first state from the server is applied and its SVIDs were requested. */
  whenSynced(): Promise<void> {
    return this.#synced
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#abort.abort()
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    await this.#issuing.catch(() => {})
    this.#client.close()
  }

  async #attest(): Promise<void> {
    const { privateKey, csrDer } = await keyAndCsr()
    const csr = csrDer.toString('base64')
    let res = await this.#client.post<{
      session?: string
      challenge?: unknown
      spiffeId?: string
      certChain?: string[]
    }>('/v1/agent/attest', {
      trustDomain: this.#opts.trustDomain,
      attestor: this.#opts.attestor.name,
      evidence: await this.#opts.attestor.evidence(),
      csr,
    })
    if (res.status === 202) {
      if (!this.#opts.attestor.answer)
        throw new Error(`attestor ${this.#opts.attestor.name} cannot answer a challenge`)
      const answer = await this.#opts.attestor.answer(res.body.challenge)
      res = await this.#client.post('/v1/agent/attest', {
        trustDomain: this.#opts.trustDomain,
        session: res.body.session,
        answer,
        csr,
      })
    }
    this.#setOwn(res.body.certChain!, privateKey.export({ format: 'pem', type: 'pkcs8' }).toString())
    this.#opts.log.info(
      { spiffeId: this.#own!.spiffeId, attestor: this.#opts.attestor.name },
      'agent attested',
    )
  }

  #setOwn(chainB64: string[], keyPem: string): void {
    const chain = chainB64.map((c) => Buffer.from(c, 'base64'))
    const leaf = new X509Certificate(chain[0]!)
    const uri = (leaf.subjectAltName ?? '').replace(/^URI:/, '').split(', ')[0]!
    this.#own = {
      spiffeId: uri,
      notBefore: Date.parse(leaf.validFrom),
      notAfter: Date.parse(leaf.validTo),
      serial: leaf.serialNumber,
    }
    this.#credentials = { certChainPem: chain.map((d) => toPem(d, 'CERTIFICATE')).join(''), keyPem }
    this.#client.setIdentity(this.#credentials)
    // notBefore is backdated for clock skew, so the half-life counts from now.
    const renewIn = (this.#own.notAfter - this.#now()) / 2
    this.#schedule(() => this.#renewOwn(), Math.max(1000, this.#jitter(renewIn)))
  }

  async #renewOwn(): Promise<void> {
    if (this.#closed) return
    try {
      if (!this.#own || this.#own.notAfter <= this.#now()) {
        // The SVID ran out (a long outage): attest again from scratch.
        await this.#retry('re-attestation', () => this.#attest())
        return
      }
      const { privateKey, csrDer } = await keyAndCsr()
      const res = await this.#client.post<{ certChain: string[] }>('/v1/agent/renew', {
        csr: csrDer.toString('base64'),
      })
      this.#setOwn(res.body.certChain, privateKey.export({ format: 'pem', type: 'pkcs8' }).toString())
      this.#opts.log.info(
        { spiffeId: this.#own!.spiffeId, notAfter: new Date(this.#own!.notAfter).toISOString() },
        'agent SVID renewed',
      )
    } catch (err) {
      this.#opts.log.warn({ err: (err as Error).message }, 'agent SVID renewal failed; retrying')
      if (
        err instanceof ServerError &&
        (err.code === 'AGENT_SVID_SUPERSEDED' || err.code === 'AGENT_NOT_FOUND')
      ) {
        this.#own = undefined
      }
      this.#schedule(() => this.#renewOwn(), this.#jitter(5000))
    }
  }

  async #syncLoop(): Promise<void> {
    let backoff = BACKOFF_MIN_MS
    while (!this.#closed) {
      try {
        await this.#client.stream(
          '/v1/agent/sync',
          (event, data) => {
            backoff = BACKOFF_MIN_MS
            if (event === 'state') this.#applyState(JSON.parse(data) as SyncState)
            if (event === 'revoked')
              this.#opts.log.error({}, 'the server revoked this agent (banned or evicted)')
          },
          this.#abort.signal,
        )
      } catch (err) {
        if (this.#closed) return
        const e = err as ServerError
        this.#opts.log.warn(
          { code: e.code, err: e.message },
          'sync stream failed; serving cached SVIDs and retrying',
        )
        if (
          e.code === 'AGENT_NOT_FOUND' ||
          e.code === 'AGENT_SVID_SUPERSEDED' ||
          e.code === 'UNAUTHENTICATED'
        ) {
          await this.#retry('re-attestation', () => this.#attest()).catch(() => {})
        }
      }
      if (this.#closed) return
      await this.#sleep(this.#jitter(backoff))
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS)
    }
  }

  #applyState(state: SyncState): void {
    if (state.policy !== undefined && JSON.stringify(state.policy) !== JSON.stringify(this.#policy)) {
      this.#policy = state.policy
      for (const listener of this.#policyListeners) {
        try {
          listener(state.policy)
        } catch (err) {
          this.#opts.log.error({ err: (err as Error).message }, 'applying the pushed policy failed')
        }
      }
    }
    this.cache.setBundle(state.bundle)
    this.cache.setFederatedBundles(state.federatedBundles ?? {})
    const stale = this.cache.setEntries(state.entries)
    this.#issue(stale).then(() => this.#resolveSynced())
  }

  #rotationTick(): void {
    if (this.#closed) return
    const due = this.cache.due(this.#now())
    if (due.length) void this.#issue(due)
    const next = this.cache.nextRotation()
    const wait = next === undefined ? 5000 : Math.min(Math.max(next - this.#now(), 100), 5000)
    this.#schedule(() => this.#rotationTick(), wait)
  }

  /** Requests SVIDs for entries, one batch at a time; failures are retried by the rotation tick. */
  #issue(entries: EntryState[]): Promise<void> {
    this.#issuing = this.#issuing.then(async () => {
      if (this.#closed || entries.length === 0) return
      const current = new Map(this.cache.entries().map((e) => [e.id, e]))
      const todo = entries.filter((e) => current.get(e.id)?.revision === e.revision)
      for (let i = 0; i < todo.length; i += 200) {
        const batch = todo.slice(i, i + 200)
        const keys = await Promise.all(batch.map(() => keyAndCsr()))
        try {
          const res = await this.#client.post<{
            results: Array<{
              entryId: string
              spiffeId?: string
              certChain?: string[]
              error?: { code: string; message: string }
            }>
          }>('/v1/agent/svids/x509', {
            requests: batch.map((e, k) => ({ entryId: e.id, csr: keys[k]!.csrDer.toString('base64') })),
          })
          const issuedAt = this.#now()
          res.body.results.forEach((r, k) => {
            const entry = batch[k]!
            if (!r.certChain) {
              this.#opts.log.warn(
                { entryId: r.entryId, code: r.error?.code, err: r.error?.message },
                'SVID request refused',
              )
              return
            }
            const chain = r.certChain.map((c) => Buffer.from(c, 'base64'))
            const leaf = new X509Certificate(chain[0]!)
            const notBefore = Date.parse(leaf.validFrom)
            const notAfter = Date.parse(leaf.validTo)
            this.cache.putSvid({
              entryId: entry.id,
              revision: entry.revision,
              spiffeId: r.spiffeId!,
              certChainDer: chain,
              privateKeyDer: keys[k]!.privateKeyDer,
              notBefore,
              notAfter,
              // Half the remaining lifetime (notBefore is backdated for clock skew), ±10%.
              rotateAt: issuedAt + this.#jitter((notAfter - issuedAt) / 2),
            })
          })
        } catch (err) {
          this.#opts.log.warn({ err: (err as Error).message }, 'SVID batch failed; will retry')
        }
      }
      this.#opts.log.info(
        { svids: this.cache.svidCount(), entries: this.cache.entries().length },
        'SVIDs issued',
      )
    })
    return this.#issuing
  }

  async #fetchJwt(entryId: string, audience: string[]): Promise<{ token: string; expiresAt: number }> {
    const res = await this.#client.post<{ token: string; expiresAt: string }>('/v1/agent/svids/jwt', {
      entryId,
      audience,
    })
    return { token: res.body.token, expiresAt: Date.parse(res.body.expiresAt) }
  }

  async #retry(what: string, fn: () => Promise<void>): Promise<void> {
    let backoff = BACKOFF_MIN_MS
    for (;;) {
      try {
        await fn()
        return
      } catch (err) {
        if (this.#closed) throw err
        const e = err as ServerError
        // Refusals that will not change by retrying are reported at once.
        if (e instanceof ServerError && e.status >= 400 && e.status < 500 && e.status !== 429) throw err
        this.#opts.log.warn({ err: e.message, retryInMs: backoff }, `${what} failed; retrying`)
        await this.#sleep(this.#jitter(backoff))
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS)
      }
    }
  }

  /** ±10% jitter, so a fleet of agents does not renew in lockstep. */
  #jitter(ms: number): number {
    return Math.max(0, ms * (0.9 + 0.2 * this.#random()))
  }

  #schedule(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.#timers.delete(t)
      fn()
    }, ms)
    t.unref()
    this.#timers.add(t)
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#schedule(resolve, ms))
  }
}
