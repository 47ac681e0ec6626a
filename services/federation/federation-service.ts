// Federation: a trust domain trusts a foreign one (another tenant, another Sigil, a SPIRE server) by
// fetching the foreign bundle from its bundle endpoint and keeping the last good one. Entries that name
// the foreign trust domain in federatesWith give their workloads that bundle; policy rules may name
// its SPIFFE IDs.
//
// Invariants:
//   - A refused fetch (unreachable, untrusted endpoint, garbage, the wrong trust domain, an older
//     sequence) never replaces the stored bundle: it is recorded as lastError, logged, and the old
//     bundle keeps working.
//   - https_spiffe endpoints are authenticated with the foreign bundle we hold (so a bootstrap bundle is
//     required at creation, as SPIRE requires), never with the web PKI.
//   - Writes are idempotent (putFederationBundle refuses older sequences atomically), so every replica
//     may refresh.

import { X509Certificate } from 'node:crypto'
import { rootCertificates } from 'node:tls'
import { parseSpiffeId, SpiffeIdError } from '../authority/spiffe-id.ts'
import {
  ChainError,
  describeCert,
  parseCertDer,
  parsePemCertificates,
  uriSans,
  verifyChain,
} from '../authority/x509-chain.ts'
import type { Clock } from '../clock.ts'
import { quote, SigilError } from '../errors.ts'
import {
  type FederationBundleOutcome,
  type FederationProfile,
  type FederationRecord,
  type Store,
  StoreConflictError,
  type TrustDomainRecord,
} from '../store/store.ts'
import { TrustDomainService, trustDomainGone } from '../tenancy/trust-domains.ts'
import { type BundleFetcher, fetchBundle, MAX_BUNDLE_BYTES } from './fetch-bundle.ts'
import {
  BundleError,
  bundleJson,
  type ForeignBundle,
  parseBootstrapBundle,
  parseSpiffeBundle,
  rootsPem,
} from './spiffe-bundle.ts'

/** Refresh bounds (seconds): a foreign hint is clamped to these; without one the default applies. */
export const MIN_REFRESH_SECONDS = 5
export const MAX_REFRESH_SECONDS = 3600
export const DEFAULT_REFRESH_SECONDS = 300
const MAX_PEM = 256 * 1024

export interface FederationInput {
  foreignTrustDomain: string
  bundleEndpointUrl: string
  profile?: FederationProfile
  endpointSpiffeId?: string
  /** https_spiffe: the foreign roots to authenticate the endpoint with, SPIFFE bundle JSON or PEM. */
  trustBundle?: string
  /** https_web: extra roots (PEM) for the endpoint's web certificate. */
  caBundlePem?: string
}

export type RefreshResult =
  | { ok: true; outcome: Exclude<FederationBundleOutcome, 'not_found' | 'older'>; record: FederationRecord }
  | { ok: false; error: string; record: FederationRecord }

export interface FederationLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

export interface FederationOptions {
  /** The spiffe_refresh_hint this server's own bundle endpoint serves (seconds). */
  refreshHintSeconds: number
  fetchTimeoutMs?: number
  maxBundleBytes?: number
  log?: FederationLog
  /** Dialing seam (tests); the real HTTPS fetcher by default. */
  fetch?: BundleFetcher
}

export function clampRefresh(seconds: number | undefined): number {
  if (seconds === undefined || !Number.isFinite(seconds)) return DEFAULT_REFRESH_SECONDS
  return Math.min(MAX_REFRESH_SECONDS, Math.max(MIN_REFRESH_SECONDS, Math.floor(seconds)))
}

function invalid(message: string, cause?: unknown): SigilError {
  return new SigilError('FEDERATION_INVALID', message, cause === undefined ? undefined : { cause })
}

function notFound(td: string, foreign: string): SigilError {
  return new SigilError(
    'FEDERATION_NOT_FOUND',
    `trust domain ${quote(td)} does not federate with ${quote(foreign)}; list them with \`sigil federation list --trust-domain ${td}\``,
  )
}

// Parsed stored bundles, by text: agents' sync snapshots read them on every change of a trust domain.
const parsedBundles = new Map<string, { bundle: ForeignBundle | undefined; validUntil: number }>()
const PARSED_BUNDLES_MAX = 256

/** The stored bundle of a federation, parsed (it was checked when stored), or undefined. */
export function storedBundle(record: FederationRecord, now: number): ForeignBundle | undefined {
  if (!record.bundle) return undefined
  const key = `${record.foreignTrustDomain}\n${record.bundle}`
  const cached = parsedBundles.get(key)
  if (cached && now < cached.validUntil) return cached.bundle
  let bundle: ForeignBundle | undefined
  let validUntil = Number.POSITIVE_INFINITY
  try {
    bundle = parseSpiffeBundle(record.bundle, record.foreignTrustDomain, now)
    // Parsed again once its first root expires (expired roots are dropped).
    for (const der of bundle.roots)
      validUntil = Math.min(validUntil, Date.parse(new X509Certificate(der).validTo))
  } catch {
    // Every root may have expired since: it then authenticates and verifies nothing.
    bundle = undefined
  }
  if (parsedBundles.size >= PARSED_BUNDLES_MAX) parsedBundles.delete(parsedBundles.keys().next().value!)
  parsedBundles.set(key, { bundle, validUntil })
  return bundle
}

export class FederationService {
  readonly refreshHintSeconds: number
  readonly #store: Store
  readonly #clock: Clock
  readonly #log: FederationLog | undefined
  readonly #fetch: BundleFetcher
  readonly #timeoutMs: number
  readonly #maxBytes: number
  readonly #inFlight = new Map<string, Promise<RefreshResult>>()

  constructor(store: Store, clock: Clock, opts: FederationOptions) {
    this.#store = store
    this.#clock = clock
    this.refreshHintSeconds = opts.refreshHintSeconds
    this.#log = opts.log
    this.#fetch = opts.fetch ?? fetchBundle
    this.#timeoutMs = opts.fetchTimeoutMs ?? 10_000
    this.#maxBytes = opts.maxBundleBytes ?? MAX_BUNDLE_BYTES
  }

  /** Checks the input, stores the federation, and fetches the foreign bundle once (its result is in the record). */
  async create(td: TrustDomainRecord, input: FederationInput): Promise<RefreshResult> {
    const record = this.#validate(td, input)
    try {
      await this.#store.createFederation(record)
    } catch (err) {
      if (err instanceof StoreConflictError) {
        throw new SigilError(
          'FEDERATION_EXISTS',
          `${td.name} already federates with ${record.foreignTrustDomain}; delete it first (\`sigil federation delete --trust-domain ${td.name} --with ${record.foreignTrustDomain}\`) to change it`,
        )
      }
      throw trustDomainGone(err)
    }
    this.#log?.info(
      {
        trustDomain: td.name,
        foreignTrustDomain: record.foreignTrustDomain,
        url: record.bundleEndpointUrl,
        profile: record.profile,
      },
      'federation created',
    )
    return this.refresh(td.name, record.foreignTrustDomain)
  }

  list(td: TrustDomainRecord): Promise<FederationRecord[]> {
    return this.#store.listFederations(td.name)
  }

  async get(td: TrustDomainRecord, foreign: string): Promise<FederationRecord> {
    const record = await this.#store.getFederation(td.name, foreign)
    if (!record) throw notFound(td.name, foreign)
    return record
  }

  async delete(td: TrustDomainRecord, foreign: string): Promise<void> {
    if (!(await this.#store.deleteFederation(td.name, foreign))) throw notFound(td.name, foreign)
    this.#log?.info({ trustDomain: td.name, foreignTrustDomain: foreign }, 'federation deleted')
  }

  /** The foreign trust domains `trustDomain` federates with (configured, with or without a bundle yet). */
  async federatedTrustDomains(trustDomain: string): Promise<string[]> {
    return (await this.#store.listFederations(trustDomain)).map((f) => f.foreignTrustDomain)
  }

  /** The current bundles of the given foreign trust domains, as agents receive them: PEM and SPIFFE. */
  async bundlesFor(
    trustDomain: string,
    foreign: Iterable<string>,
  ): Promise<Record<string, { pem: string; spiffe: Record<string, unknown> }>> {
    const wanted = new Set(foreign)
    const out: Record<string, { pem: string; spiffe: Record<string, unknown> }> = {}
    if (wanted.size === 0) return out
    const now = this.#clock.now()
    for (const record of await this.#store.listFederations(trustDomain)) {
      if (!wanted.has(record.foreignTrustDomain)) continue
      const bundle = storedBundle(record, now)
      if (!bundle) continue
      out[record.foreignTrustDomain] = {
        pem: rootsPem(bundle),
        spiffe: JSON.parse(record.bundle!) as Record<string, unknown>,
      }
    }
    return out
  }

  /**
   * Fetches the foreign bundle now and stores it when it is good and not older than the stored one.
   * Concurrent calls for the same federation in this process share one fetch.
   */
  refresh(trustDomain: string, foreign: string): Promise<RefreshResult> {
    const key = `${trustDomain}\n${foreign}`
    let pending = this.#inFlight.get(key)
    if (!pending) {
      pending = this.#refresh(trustDomain, foreign).finally(() => this.#inFlight.delete(key))
      this.#inFlight.set(key, pending)
    }
    return pending
  }

  async #refresh(trustDomain: string, foreign: string): Promise<RefreshResult> {
    const record = await this.#store.getFederation(trustDomain, foreign)
    if (!record) throw notFound(trustDomain, foreign)
    const started = this.#clock.now()
    const context = {
      trustDomain,
      foreignTrustDomain: foreign,
      url: record.bundleEndpointUrl,
      profile: record.profile,
    }
    const failed = async (message: string): Promise<RefreshResult> => {
      this.#log?.warn(
        { ...context, err: message, sequence: record.sequence },
        `federated bundle of ${foreign} refused; keeping the previous one`,
      )
      await this.#store.recordFederationError(trustDomain, foreign, message, this.#clock.now())
      const now = (await this.#store.getFederation(trustDomain, foreign)) ?? record
      return { ok: false, error: message, record: now }
    }
    let bundle: ForeignBundle
    try {
      const text = await this.#fetch({
        url: new URL(record.bundleEndpointUrl),
        ...(record.profile === 'https_web' && record.caBundlePem
          ? { webRoots: webRoots(record.caBundlePem) }
          : {}),
        ...(record.profile === 'https_spiffe'
          ? { authenticate: (chain: Buffer[]) => this.#authenticate(record, chain, started) }
          : {}),
        timeoutMs: this.#timeoutMs,
        maxBytes: this.#maxBytes,
      })
      bundle = parseSpiffeBundle(text, foreign, this.#clock.now())
    } catch (err) {
      return failed((err as Error).message)
    }
    const outcome = await this.#store.putFederationBundle(trustDomain, foreign, {
      bundle: bundleJson(bundle),
      sequence: bundle.sequence,
      refreshHintSeconds: clampRefresh(bundle.refreshHintSeconds),
      refreshedAt: this.#clock.now(),
    })
    if (outcome === 'not_found') throw notFound(trustDomain, foreign)
    if (outcome === 'older') {
      const current = await this.#store.getFederation(trustDomain, foreign)
      return failed(
        `the endpoint served spiffe_sequence ${bundle.sequence}, older than the ${current?.sequence ?? record.sequence} already held`,
      )
    }
    const now = (await this.#store.getFederation(trustDomain, foreign))!
    if (outcome === 'stored') {
      this.#log?.info(
        { ...context, sequence: bundle.sequence, roots: bundle.roots.length, jwtKeys: bundle.jwtKeys.length },
        `federated bundle of ${foreign} updated`,
      )
    }
    return { ok: true, outcome, record: now }
  }

  /** https_spiffe: the endpoint's chain must verify against the bundle held now, with the expected ID. */
  #authenticate(record: FederationRecord, chainDer: Buffer[], now: number): void {
    const held = storedBundle(record, now)
    if (!held || held.roots.length === 0) {
      throw new ChainError(
        `no valid root of ${record.foreignTrustDomain} is held to authenticate it; delete the federation and create it again with a current --trust-bundle`,
      )
    }
    if (chainDer.length === 0) throw new ChainError('it presented no certificate')
    const [leaf, ...rest] = chainDer.map((der) => parseCertDer(der))
    verifyChain(
      leaf!,
      rest,
      held.roots.map((der) => parseCertDer(der)),
      now,
    )
    const ids = uriSans(leaf!)
    if (ids.length !== 1 || ids[0] !== record.endpointSpiffeId) {
      throw new ChainError(
        `its certificate ${describeCert(leaf!)} names ${ids.length ? ids.map((id) => quote(id)).join(', ') : 'no SPIFFE ID'}, not the expected ${quote(record.endpointSpiffeId)}`,
      )
    }
  }

  #validate(td: TrustDomainRecord, input: FederationInput): FederationRecord {
    const foreign = input.foreignTrustDomain
    TrustDomainService.validateName(foreign)
    if (foreign === td.name) throw invalid('a trust domain cannot federate with itself')
    let url: URL
    try {
      url = new URL(input.bundleEndpointUrl)
    } catch (err) {
      throw invalid(`bundleEndpointUrl ${quote(input.bundleEndpointUrl)} is not a URL`, err)
    }
    if (url.protocol !== 'https:') {
      throw invalid(`bundleEndpointUrl must be an https:// URL, not ${quote(url.protocol)}`)
    }
    if (url.username || url.password) throw invalid('bundleEndpointUrl must not carry credentials')
    if (url.hash) throw invalid('bundleEndpointUrl must not have a #fragment')
    const profile = input.profile ?? 'https_web'
    const now = this.#clock.now()
    const record: FederationRecord = {
      trustDomain: td.name,
      foreignTrustDomain: foreign,
      bundleEndpointUrl: url.toString(),
      profile,
      sequence: 0,
      refreshHintSeconds: DEFAULT_REFRESH_SECONDS,
      lastRefreshAt: 0,
      createdAt: now,
    }
    if (profile === 'https_web') {
      if (input.endpointSpiffeId !== undefined)
        throw invalid(
          'endpointSpiffeId is for the https_spiffe profile; https_web endpoints have web certificates',
        )
      if (input.trustBundle !== undefined)
        throw invalid(
          'trustBundle is for the https_spiffe profile; for https_web give caBundlePem if the endpoint needs extra roots',
        )
      if (input.caBundlePem !== undefined) {
        if (input.caBundlePem.length > MAX_PEM) throw invalid(`caBundlePem is larger than ${MAX_PEM} bytes`)
        try {
          parsePemCertificates(input.caBundlePem, 'caBundlePem')
        } catch (err) {
          throw invalid((err as Error).message, err)
        }
        record.caBundlePem = input.caBundlePem
      }
      return record
    }
    if (profile !== 'https_spiffe')
      throw invalid(`profile must be https_web or https_spiffe, not ${quote(profile)}`)
    if (input.caBundlePem !== undefined)
      throw invalid(
        'caBundlePem is for the https_web profile; https_spiffe endpoints are authenticated by trustBundle',
      )
    if (input.endpointSpiffeId === undefined)
      throw invalid("the https_spiffe profile needs endpointSpiffeId: the SPIFFE ID of the endpoint's server")
    try {
      const id = parseSpiffeId(input.endpointSpiffeId)
      if (id.trustDomain !== foreign) {
        throw invalid(
          `endpointSpiffeId ${quote(input.endpointSpiffeId)} is not in the foreign trust domain ${quote(foreign)}`,
        )
      }
    } catch (err) {
      if (err instanceof SpiffeIdError) throw invalid(`endpointSpiffeId: ${err.message}`, err)
      throw err
    }
    record.endpointSpiffeId = input.endpointSpiffeId
    if (input.trustBundle === undefined) {
      throw invalid(
        `the https_spiffe profile needs trustBundle: ${foreign}'s current bundle (SPIFFE JSON or PEM), to authenticate its endpoint the first time`,
      )
    }
    let bootstrap: ForeignBundle
    try {
      bootstrap = parseBootstrapBundle(input.trustBundle, foreign, now)
    } catch (err) {
      if (err instanceof BundleError) throw invalid(`trustBundle: ${err.message}`, err)
      throw err
    }
    if (bootstrap.roots.length === 0)
      throw invalid('trustBundle holds no X.509 root to authenticate the endpoint with')
    record.bundle = bundleJson(bootstrap)
    record.sequence = bootstrap.sequence
    record.refreshHintSeconds = clampRefresh(bootstrap.refreshHintSeconds)
    return record
  }
}

/** The system's roots and the federation's own: extra roots add to the web PKI, never replace it. */
function webRoots(caBundlePem: string): string[] {
  return [...rootCertificates, caBundlePem]
}
