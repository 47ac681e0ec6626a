// JWT evidence (k8s PSATs, GCE identity tokens, Azure MSI tokens): keys from a JWKS fetched through the
// context's fetch (found by OIDC discovery when no URL is configured), cached, and fetched again when a
// token names a key id the cache does not have (key rotation), at most once per cooldown.

import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTPayload, jwtVerify } from 'jose'
import { failed, invalidEvidence, quote, unavailable } from '../errors.ts'

const CACHE_MS = 5 * 60_000
const COOLDOWN_MS = 30_000
const FETCH_TIMEOUT_MS = 5_000
const MAX_DOCUMENT_BYTES = 512 * 1024
const CLOCK_TOLERANCE_S = 30

export async function fetchJson(
  fetchImpl: typeof fetch,
  url: string,
  what: string,
): Promise<Record<string, unknown>> {
  let res: Response
  try {
    res = await fetchImpl(url, {
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      headers: { accept: 'application/json' },
    })
  } catch (err) {
    throw unavailable(`${what}: GET ${url} failed (${(err as Error).message})`, err)
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => {})
    throw unavailable(`${what}: GET ${url} answered HTTP ${res.status}`)
  }
  const text = await res.text().catch((err: Error) => {
    throw unavailable(`${what}: reading ${url} failed (${err.message})`, err)
  })
  if (text.length > MAX_DOCUMENT_BYTES)
    throw unavailable(`${what}: ${url} is larger than ${MAX_DOCUMENT_BYTES} bytes`)
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw unavailable(`${what}: ${url} is not JSON`, err)
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw unavailable(`${what}: ${url} is not a JSON object`)
  return doc as Record<string, unknown>
}

/** Where a JWKS lives: a fixed URL, or the issuer's OIDC discovery document. */
export type JwksLocation = { jwksUrl: string } | { issuer: string }

type KeySet = ReturnType<typeof createLocalJWKSet>

export class JwksSource {
  #keys: KeySet | undefined
  #fetchedAt = Number.NEGATIVE_INFINITY
  #jwksUrl: string | undefined
  #pending: Promise<KeySet> | undefined

  constructor(
    private readonly location: JwksLocation,
    private readonly label: string,
  ) {
    if ('jwksUrl' in location) this.#jwksUrl = location.jwksUrl
  }

  async #resolveUrl(fetchImpl: typeof fetch): Promise<string> {
    if (this.#jwksUrl) return this.#jwksUrl
    const issuer = (this.location as { issuer: string }).issuer
    const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`
    const doc = await fetchJson(fetchImpl, url, `${this.label} OIDC discovery`)
    // OIDC discovery: the document must name the issuer it was fetched for.
    if (doc.issuer !== issuer) {
      throw unavailable(
        `${this.label} OIDC discovery: ${url} names issuer ${quote(doc.issuer)}, not the configured ${quote(issuer)}`,
      )
    }
    if (typeof doc.jwks_uri !== 'string' || !/^https?:\/\//.test(doc.jwks_uri)) {
      throw unavailable(`${this.label} OIDC discovery: ${url} has no usable jwks_uri`)
    }
    this.#jwksUrl = doc.jwks_uri
    return doc.jwks_uri
  }

  #refresh(fetchImpl: typeof fetch, now: number): Promise<KeySet> {
    // Agents of a whole cluster attesting at once share one fetch.
    this.#pending ??= this.#fetchKeys(fetchImpl, now).finally(() => {
      this.#pending = undefined
    })
    return this.#pending
  }

  async #fetchKeys(fetchImpl: typeof fetch, now: number): Promise<KeySet> {
    const url = await this.#resolveUrl(fetchImpl)
    const doc = await fetchJson(fetchImpl, url, `${this.label} JWKS`)
    if (!Array.isArray(doc.keys)) throw unavailable(`${this.label} JWKS: ${url} has no "keys" array`)
    try {
      this.#keys = createLocalJWKSet(doc as unknown as JSONWebKeySet)
    } catch (err) {
      throw unavailable(`${this.label} JWKS: ${url} is not a valid JWK Set`, err)
    }
    this.#fetchedAt = now
    return this.#keys
  }

  async keys(fetchImpl: typeof fetch, now: number): Promise<KeySet> {
    if (this.#keys && now - this.#fetchedAt < CACHE_MS) return this.#keys
    return this.#refresh(fetchImpl, now)
  }

  /** A fresh copy after an unknown key id, unless the last fetch was within the cooldown. */
  async refreshAfterMiss(fetchImpl: typeof fetch, now: number): Promise<KeySet | undefined> {
    if (now - this.#fetchedAt < COOLDOWN_MS) return undefined
    return this.#refresh(fetchImpl, now)
  }
}

export interface JwtChecks {
  issuer: string | string[]
  audience: string
  algorithms: string[]
  /** Who the token speaks for, for messages: "k8s_psat cluster \"prod\"". */
  label: string
}

export async function verifyJwt(
  attestor: string,
  token: string,
  source: JwksSource,
  ctx: { fetch: typeof fetch; clock: { now(): number } },
  checks: JwtChecks,
): Promise<JWTPayload> {
  const now = ctx.clock.now()
  const options = {
    issuer: checks.issuer,
    audience: checks.audience,
    algorithms: checks.algorithms,
    currentDate: new Date(now),
    clockTolerance: CLOCK_TOLERANCE_S,
    requiredClaims: ['exp'],
  }
  try {
    try {
      return (await jwtVerify(token, await source.keys(ctx.fetch, now), options)).payload
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err
      const fresh = await source.refreshAfterMiss(ctx.fetch, now)
      if (!fresh) throw err
      return (await jwtVerify(token, fresh, options)).payload
    }
  } catch (err) {
    throw mapJoseError(attestor, err, checks, now)
  }
}

function claimValue(value: unknown): string {
  return Array.isArray(value) ? value.map((v) => quote(v)).join(', ') : quote(value)
}

function mapJoseError(attestor: string, err: unknown, checks: JwtChecks, now: number): Error {
  const where = `${attestor}: ${checks.label}:`
  if (err instanceof errors.JWTExpired) {
    const exp = typeof err.payload.exp === 'number' ? err.payload.exp * 1000 : undefined
    const ago = exp === undefined ? '' : ` ${Math.max(0, Math.round((now - exp) / 1000))}s ago`
    return failed(`${where} token expired${ago}; the agent must present a fresh token`, err)
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') {
      return failed(
        `${where} token audience ${claimValue(err.payload.aud)} is not the configured ${quote(checks.audience)}`,
        err,
      )
    }
    if (err.claim === 'iss') {
      return failed(
        `${where} token issuer ${claimValue(err.payload.iss)} is not the configured ${claimValue(checks.issuer)}`,
        err,
      )
    }
    return failed(`${where} token claim ${err.claim} check failed (${err.message})`, err)
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return failed(`${where} token signature does not verify with the issuer's keys`, err)
  }
  if (err instanceof errors.JWKSNoMatchingKey) {
    return failed(`${where} no key of the issuer's JWKS matches the token (signed by another issuer?)`, err)
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return failed(`${where} token algorithm is not allowed (allowed: ${checks.algorithms.join(', ')})`, err)
  }
  if (
    err instanceof errors.JWSInvalid ||
    err instanceof errors.JWTInvalid ||
    err instanceof errors.JOSENotSupported
  ) {
    return invalidEvidence(attestor, `token is not a usable JWT (${err.message})`)
  }
  if (err instanceof errors.JOSEError) return failed(`${where} token refused (${err.message})`, err)
  return err as Error
}
