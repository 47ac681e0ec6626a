// Console sessions without a session table: a session is a sealed cookie (a JWE, dir + A256GCM) under an
// installation-wide key that is itself sealed by the KeyManager and kept in the store's metadata, so
// every replica opens every other replica's cookies. The cookie names the user, their grants (or, for a
// sign-in with an API token, the token's hash, so revoking the token ends the session), the CSRF secret
// and the expiry. Nothing in it can be read or changed without the key.

import { randomBytes } from 'node:crypto'
import { EncryptJWT, errors as joseErrors, jwtDecrypt } from 'jose'
import type { KeyManager } from '../authority/key-manager.ts'
import type { Clock } from '../clock.ts'
import { SigilError } from '../errors.ts'
import type { Grant, Store } from '../store/store.ts'

const META_KEY = 'console-session-key'
const ISSUER = 'sigil-console'

/** What a console session cookie holds. */
export interface SessionData {
  /** How the user signed in. */
  method: 'oidc' | 'token'
  /** oidc: `<issuer>#<sub>`; token: the API token's id. */
  subject: string
  /** What the console shows and the audit log records. */
  name: string
  /** oidc: the grants the provider's claims mapped to at sign-in. */
  grants: Grant[]
  /** token: sha256 of the API token, checked again on every request. */
  tokenHash?: string
  /** The double-submit secret every mutating request must echo in `x-sigil-csrf`. */
  csrf: string
  /** ms since the epoch */
  expiresAt: number
}

/** The short-lived state of an OpenID Connect sign-in between /auth/login and /auth/callback. */
export interface LoginState {
  state: string
  nonce: string
  codeVerifier: string
  redirectUri: string
  expiresAt: number
}

type Purpose = 'session' | 'login'

export class SessionSealer {
  #key: Promise<Uint8Array> | undefined

  constructor(
    private readonly store: Store,
    private readonly keys: KeyManager,
    private readonly clock: Clock,
  ) {}

  /** The installation's session key: created once (atomically), sealed at rest. */
  #loadKey(): Promise<Uint8Array> {
    this.#key ??= (async () => {
      let raw = await this.store.getMeta(META_KEY)
      if (!raw) {
        const fresh = randomBytes(32)
        await this.store.setMetaIfAbsent(META_KEY, await this.keys.seal(fresh, META_KEY))
        fresh.fill(0)
        raw = await this.store.getMeta(META_KEY)
      }
      return new Uint8Array(await this.keys.unseal(raw!, META_KEY))
    })().catch((err) => {
      this.#key = undefined
      throw err
    })
    return this.#key
  }

  async seal(purpose: Purpose, payload: object, expiresAt: number): Promise<string> {
    const key = await this.#loadKey()
    return new EncryptJWT({ ...payload })
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
      .setIssuer(ISSUER)
      .setAudience(purpose)
      .setIssuedAt(Math.floor(this.clock.now() / 1000))
      .setExpirationTime(Math.floor(expiresAt / 1000))
      .encrypt(key)
  }

  /** Opens a sealed value; SESSION_EXPIRED when it is past its expiry, SESSION_INVALID when forged. */
  async open<T>(purpose: Purpose, sealed: string): Promise<T> {
    const key = await this.#loadKey()
    try {
      const { payload } = await jwtDecrypt(sealed, key, {
        issuer: ISSUER,
        audience: purpose,
        currentDate: new Date(this.clock.now()),
        keyManagementAlgorithms: ['dir'],
        contentEncryptionAlgorithms: ['A256GCM'],
      })
      return payload as T
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) {
        throw new SigilError(
          'SESSION_EXPIRED',
          purpose === 'session'
            ? 'your console session expired; sign in again at /'
            : 'the sign-in took too long; start again at /',
          { cause: err },
        )
      }
      throw new SigilError(
        'SESSION_INVALID',
        purpose === 'session'
          ? 'the console session cookie is not one this installation issued (forged, damaged, or from another installation); sign in again at /'
          : 'the sign-in state cookie is not one this installation issued; start again at /',
        { cause: err },
      )
    }
  }
}

export function newCsrfSecret(): string {
  return randomBytes(32).toString('base64url')
}
