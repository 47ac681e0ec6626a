// A foreign trust domain's SPIFFE bundle, parsed strictly: what a federated endpoint serves is
// untrusted input until it passes every check here, and a bundle that fails one is refused whole (the
// previous one keeps working). Pure: no I/O.
//
// Checks, beyond "it is JSON":
//   - a JWK Set: `keys` is an array; keys with `use: x509-svid` carry exactly one `x5c` certificate,
//     which must parse, be a CA and match the key's own public parameters; keys with `use: jwt-svid`
//     carry a `kid` (unique) and a public key node:crypto can import. Keys of another `use` are skipped
//     (the SPIFFE bundle format lets consumers ignore them). No key may carry private parameters.
//   - roots that name a SPIFFE trust domain (a URI SAN `spiffe://TD`, as SPIRE's and Sigil's do) must
//     name the expected one: the wrong trust domain's bundle is refused.
//   - expired roots are dropped; a bundle left with no usable key is refused.
//   - `spiffe_sequence` is a non-negative integer and `spiffe_refresh_hint` a positive one, when present.

import { createPublicKey, type JsonWebKey } from 'node:crypto'
import { derToPem, pemBlocks } from '../authority/pem.ts'
import { type Cert, describeCert, isCa, parseCertDer, uriSans } from '../authority/x509-chain.ts'
import { quote } from '../errors.ts'

export interface ForeignBundle {
  trustDomain: string
  /** X.509 roots (DER), in the order served. */
  roots: Buffer[]
  /** Public JWKs of JWT-SVID signers, each with `kid` and `use: jwt-svid`. */
  jwtKeys: Record<string, unknown>[]
  /** spiffe_sequence; 0 when the bundle had none. */
  sequence: number
  /** spiffe_refresh_hint in seconds, when the bundle had one. */
  refreshHintSeconds?: number
}

/** A bundle refused: the message says what was wrong, for the operator and the log. */
export class BundleError extends Error {
  override readonly name = 'BundleError'
}

const PRIVATE_PARAMS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'] as const

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The first characters of a body that is not JSON, so the log line shows what came instead. */
function preview(text: string): string {
  return quote(text.replace(/\s+/g, ' ').trim(), 60)
}

function checkNoPrivate(key: Record<string, unknown>, where: string): void {
  for (const p of PRIVATE_PARAMS) {
    if (key[p] !== undefined) throw new BundleError(`${where} carries private key material ("${p}")`)
  }
}

function checkRootDomain(cert: Cert, trustDomain: string, where: string): void {
  for (const uri of uriSans(cert)) {
    if (!uri.startsWith('spiffe://')) continue
    const named = uri.slice('spiffe://'.length).split('/')[0]
    if (named !== trustDomain) {
      throw new BundleError(
        `${where} is a CA of trust domain ${quote(named)}, not ${quote(trustDomain)}: the endpoint serves another trust domain's bundle`,
      )
    }
  }
}

function x509Root(key: Record<string, unknown>, trustDomain: string, where: string): Cert {
  const x5c = key.x5c
  if (!Array.isArray(x5c) || x5c.length !== 1 || typeof x5c[0] !== 'string') {
    throw new BundleError(`${where} (x509-svid) must carry exactly one certificate in x5c`)
  }
  const b64 = x5c[0]
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new BundleError(`${where}: x5c is not base64`)
  let cert: Cert
  try {
    cert = parseCertDer(Buffer.from(b64, 'base64'))
  } catch (err) {
    throw new BundleError(`${where}: x5c does not parse as a certificate (${(err as Error).message})`)
  }
  if (!isCa(cert)) {
    throw new BundleError(`${where}: ${describeCert(cert)} is not a CA certificate (basicConstraints cA)`)
  }
  checkRootDomain(cert, trustDomain, where)
  if (typeof key.kty === 'string') {
    let same = false
    try {
      same = createPublicKey({ key: key as JsonWebKey, format: 'jwk' }).equals(cert.node.publicKey)
    } catch {
      same = false
    }
    if (!same) throw new BundleError(`${where}: the key's parameters do not match its x5c certificate`)
  }
  return cert
}

function jwtKey(key: Record<string, unknown>, where: string): Record<string, unknown> {
  if (typeof key.kid !== 'string' || key.kid === '' || key.kid.length > 256) {
    throw new BundleError(`${where} (jwt-svid) has no kid`)
  }
  try {
    const imported = createPublicKey({ key: key as JsonWebKey, format: 'jwk' })
    if (imported.type !== 'public') throw new Error('not a public key')
  } catch (err) {
    throw new BundleError(
      `${where} (jwt-svid, kid ${quote(key.kid)}) is not a usable public key (${(err as Error).message})`,
    )
  }
  // Only the public parameters of known key types travel on.
  const out: Record<string, unknown> = {}
  for (const name of ['kty', 'crv', 'x', 'y', 'n', 'e', 'alg'])
    if (key[name] !== undefined) out[name] = key[name]
  out.kid = key.kid
  out.use = 'jwt-svid'
  return out
}

function optionalInteger(value: unknown, name: string, min: number): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new BundleError(
      `${name} must be an integer of at least ${min}, got ${quote(JSON.stringify(value))}`,
    )
  }
  return value
}

/** Parses a SPIFFE bundle (JSON text) of `trustDomain`; throws BundleError naming the problem. */
export function parseSpiffeBundle(text: string, trustDomain: string, now: number): ForeignBundle {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw new BundleError(`the bundle is not JSON (it starts ${preview(text)})`)
  }
  if (!isObject(doc) || !Array.isArray(doc.keys)) {
    throw new BundleError('the bundle is not a JWK Set: it has no "keys" array')
  }
  if (doc.keys.length === 0) throw new BundleError('the bundle is empty: its "keys" array holds no key')
  if (doc.keys.length > 10_000)
    throw new BundleError(`the bundle holds ${doc.keys.length} keys; at most 10000`)
  const sequence = optionalInteger(doc.spiffe_sequence, 'spiffe_sequence', 0) ?? 0
  const hint = optionalInteger(doc.spiffe_refresh_hint, 'spiffe_refresh_hint', 1)

  const roots: Buffer[] = []
  const seenRoots = new Set<string>()
  const jwtKeys: Record<string, unknown>[] = []
  const kids = new Set<string>()
  let expired = 0
  doc.keys.forEach((key: unknown, i: number) => {
    const where = `keys[${i}]`
    if (!isObject(key)) throw new BundleError(`${where} is not a JSON object`)
    checkNoPrivate(key, where)
    if (key.use === 'x509-svid') {
      const cert = x509Root(key, trustDomain, where)
      if (cert.view.notAfter.getTime() <= now) {
        expired++
        return
      }
      if (seenRoots.has(cert.sha256)) return
      seenRoots.add(cert.sha256)
      roots.push(cert.der)
    } else if (key.use === 'jwt-svid') {
      const jwk = jwtKey(key, where)
      if (kids.has(jwk.kid as string)) throw new BundleError(`${where}: kid ${quote(jwk.kid)} appears twice`)
      kids.add(jwk.kid as string)
      jwtKeys.push(jwk)
    }
  })
  if (roots.length === 0 && jwtKeys.length === 0) {
    throw new BundleError(
      expired > 0
        ? `every root of the bundle has expired (${expired}) and it has no JWT key`
        : 'the bundle holds no x509-svid or jwt-svid key',
    )
  }
  const bundle: ForeignBundle = { trustDomain, roots, jwtKeys, sequence }
  if (hint !== undefined) bundle.refreshHintSeconds = hint
  return bundle
}

/** A bundle from PEM roots (a bootstrap bundle given as PEM): no JWT keys, sequence 0. */
export function parsePemBundle(pem: string, trustDomain: string, now: number): ForeignBundle {
  const blocks = pemBlocks(pem, 'CERTIFICATE')
  if (blocks.length === 0) throw new BundleError('the PEM bundle holds no CERTIFICATE block')
  const keys = blocks.map((der) => ({ use: 'x509-svid', x5c: [der.toString('base64')] }))
  return parseSpiffeBundle(JSON.stringify({ keys }), trustDomain, now)
}

/** A bootstrap bundle: SPIFFE bundle JSON, or PEM roots. */
export function parseBootstrapBundle(text: string, trustDomain: string, now: number): ForeignBundle {
  return text.trimStart().startsWith('{')
    ? parseSpiffeBundle(text, trustDomain, now)
    : parsePemBundle(text, trustDomain, now)
}

/** The bundle in the SPIFFE format, normalized (so two fetches of the same bundle compare equal). */
export function spiffeBundleOf(bundle: ForeignBundle): {
  keys: Record<string, unknown>[]
  spiffe_sequence: number
  spiffe_refresh_hint?: number
} {
  const x509Keys = bundle.roots.map((der) => {
    const cert = parseCertDer(der)
    const jwk = cert.node.publicKey.export({ format: 'jwk' })
    return { use: 'x509-svid', ...jwk, x5c: [der.toString('base64')] }
  })
  const out: { keys: Record<string, unknown>[]; spiffe_sequence: number; spiffe_refresh_hint?: number } = {
    keys: [...x509Keys, ...bundle.jwtKeys],
    spiffe_sequence: bundle.sequence,
  }
  if (bundle.refreshHintSeconds !== undefined) out.spiffe_refresh_hint = bundle.refreshHintSeconds
  return out
}

export function bundleJson(bundle: ForeignBundle): string {
  return JSON.stringify(spiffeBundleOf(bundle))
}

export function rootsPem(bundle: Pick<ForeignBundle, 'roots'>): string {
  return bundle.roots.map((der) => derToPem(der, 'CERTIFICATE')).join('')
}
