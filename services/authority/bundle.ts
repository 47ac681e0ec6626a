// The trust domain bundle in its two forms: PEM (the root CAs) and the SPIFFE bundle format (a JWK Set
// with `x509-svid` keys carrying exactly one `x5c` certificate and no `kid`, `jwt-svid` keys with a
// `kid`, `spiffe_sequence` and `spiffe_refresh_hint`).

import { X509Certificate } from 'node:crypto'
import type { JwtKeyRecord, RootCaRecord } from '../store/store.ts'
import { pemToDer } from './pem.ts'

export const REFRESH_HINT_SECONDS = 300

export interface BundleContents {
  roots: RootCaRecord[]
  jwtKeys: JwtKeyRecord[]
  sequence: number
}

export function bundlePem(bundle: BundleContents): string {
  return bundle.roots.map((r) => r.certPem).join('')
}

/** `refreshHint`: the spiffe_refresh_hint served, seconds (server config federation.refreshHint). */
export function spiffeBundle(bundle: BundleContents, refreshHint: number = REFRESH_HINT_SECONDS) {
  const x509Keys = bundle.roots.map((root) => {
    const der = pemToDer(root.certPem)
    const jwk = new X509Certificate(der).publicKey.export({ format: 'jwk' })
    return { use: 'x509-svid', ...jwk, x5c: [der.toString('base64')] }
  })
  const jwtKeys = bundle.jwtKeys.map((k) => ({ ...k.publicJwk, use: 'jwt-svid', kid: k.kid }))
  return {
    keys: [...x509Keys, ...jwtKeys],
    spiffe_sequence: bundle.sequence,
    spiffe_refresh_hint: refreshHint,
  }
}
