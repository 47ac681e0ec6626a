// A token issuer on loopback, like a Kubernetes API server's service account issuer (or Google's and
// Azure's token services): OIDC discovery, a JWKS, and tokens signed with its keys.

import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose'
import { json, startServer } from './http-server.ts'

type SigningKey = Parameters<SignJWT['sign']>[0]

type Key = { kid: string; alg: string; privateKey: SigningKey; jwk: JWK }

export interface TestIssuer {
  /** The issuer URL (also the base of discovery). */
  url: string
  jwksUrl: string
  /** How many times the JWKS was fetched. */
  jwksFetches(): number
  sign(
    payload: JWTPayload,
    opts?: { kid?: string; alg?: string; key?: SigningKey; iss?: string },
  ): Promise<string>
  /** Adds a key to the JWKS (rotation); returns its kid. */
  addKey(alg?: string): Promise<string>
  /** A key pair the JWKS does not know (a forger's). */
  foreignKey(alg?: string): Promise<SigningKey>
  defaultKid: string
}

async function makeKey(kid: string, alg: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
  return { kid, alg, privateKey, jwk }
}

export async function startIssuer(
  t: { teardown(fn: () => unknown): void },
  opts: { alg?: string; issuerOverride?: string; discoveryIssuer?: string } = {},
): Promise<TestIssuer> {
  const alg = opts.alg ?? 'RS256'
  const keys: Key[] = [await makeKey('key-1', alg)]
  let fetches = 0
  let base = ''
  const server = await startServer(t, (req, res) => {
    if (req.url === '/.well-known/openid-configuration') {
      return json(res, 200, { issuer: opts.discoveryIssuer ?? base, jwks_uri: `${base}/openid/v1/jwks` })
    }
    if (req.url === '/openid/v1/jwks') {
      fetches++
      return json(res, 200, { keys: keys.map((k) => k.jwk) })
    }
    json(res, 404, { error: 'not found' })
  })
  base = server.url
  let next = 2
  return {
    url: base,
    jwksUrl: `${base}/openid/v1/jwks`,
    jwksFetches: () => fetches,
    defaultKid: 'key-1',
    async sign(payload, o = {}) {
      const key = o.key ?? keys.find((k) => k.kid === (o.kid ?? 'key-1'))!.privateKey
      return new SignJWT(payload)
        .setProtectedHeader({ alg: o.alg ?? alg, kid: o.kid ?? 'key-1', typ: 'JWT' })
        .setIssuer(o.iss ?? opts.issuerOverride ?? base)
        .sign(key)
    },
    async addKey(a = alg) {
      const key = await makeKey(`key-${next++}`, a)
      keys.push(key)
      return key.kid
    },
    async foreignKey(a = alg) {
      return (await generateKeyPair(a, { extractable: true })).privateKey
    },
  }
}
