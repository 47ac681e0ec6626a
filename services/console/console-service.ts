// The console's sign-in and sessions: turns an API token or an OpenID Connect sign-in into a sealed
// session cookie, and a session cookie back into the Principal the API's grant checks take. A session
// never widens what its user may do: an SSO user has the grants their claims mapped to at sign-in (until
// the session expires), a token user has the token's grants as they are now (a revoked token ends it).

import type { ApiTokenService, Principal } from '../auth/api-tokens.ts'
import type { KeyManager } from '../authority/key-manager.ts'
import type { Clock } from '../clock.ts'
import type { ConsoleConfig } from '../config.ts'
import { SigilError } from '../errors.ts'
import { hashToken } from '../registry/join-tokens.ts'
import type { Store } from '../store/store.ts'
import { OidcSignIn } from './oidc.ts'
import { type LoginState, newCsrfSecret, type SessionData, SessionSealer } from './sessions.ts'

export interface ConsoleSession {
  data: SessionData
  principal: Principal
}

export class ConsoleService {
  readonly sessionTtlSeconds: number
  readonly oidc: OidcSignIn | undefined
  readonly #sealer: SessionSealer
  private readonly clock: Clock

  constructor(
    opts: { store: Store; keys: KeyManager; clock: Clock; config: ConsoleConfig },
    private readonly apiTokens: ApiTokenService,
  ) {
    this.clock = opts.clock
    this.sessionTtlSeconds = opts.config.sessionTtl
    this.oidc = opts.config.oidc ? new OidcSignIn(opts.config.oidc) : undefined
    this.#sealer = new SessionSealer(opts.store, opts.keys, opts.clock)
  }

  /** Opens a session cookie: SESSION_INVALID, SESSION_EXPIRED, or the principal it stands for. */
  async authenticate(cookie: string): Promise<ConsoleSession> {
    const data = await this.#sealer.open<SessionData>('session', cookie)
    if (data.method === 'token') {
      let principal: Principal
      try {
        principal = await this.apiTokens.authenticateHash(data.tokenHash ?? '')
      } catch (err) {
        throw new SigilError(
          'SESSION_INVALID',
          'the API token this console session signed in with was revoked or expired; sign in again at /',
          { cause: err },
        )
      }
      return { data: { ...data, name: principal.name, grants: principal.grants }, principal }
    }
    return {
      data,
      principal: {
        tokenId: '',
        name: data.name,
        grants: data.grants,
        actor: `oidc:${data.subject} (${data.name})`,
      },
    }
  }

  async #issue(
    data: Omit<SessionData, 'csrf' | 'expiresAt'>,
  ): Promise<{ cookie: string; data: SessionData }> {
    const full: SessionData = {
      ...data,
      csrf: newCsrfSecret(),
      expiresAt: this.clock.now() + this.sessionTtlSeconds * 1000,
    }
    return { cookie: await this.#sealer.seal('session', full, full.expiresAt), data: full }
  }

  /** The fallback sign-in (a fresh installation has only the bootstrap admin token). */
  async signInWithToken(
    token: string,
  ): Promise<{ cookie: string; session: ConsoleSession; maxAgeSeconds: number }> {
    const principal = await this.apiTokens.authenticate(token)
    const issued = await this.#issue({
      method: 'token',
      subject: principal.tokenId,
      name: principal.name,
      grants: [],
      tokenHash: hashToken(token),
    })
    return {
      cookie: issued.cookie,
      session: { data: { ...issued.data, grants: principal.grants }, principal },
      maxAgeSeconds: this.sessionTtlSeconds,
    }
  }

  #requireOidc(): OidcSignIn {
    if (!this.oidc) {
      throw new SigilError(
        'SIGN_IN_NOT_CONFIGURED',
        'single sign-on is not configured on this installation (console.oidc in the server configuration); sign in with an API token',
      )
    }
    return this.oidc
  }

  async beginOidc(
    redirectUri: string,
    prompt?: string,
  ): Promise<{ url: URL; loginCookie: string; maxAgeSeconds: number }> {
    const { url, login } = await this.#requireOidc().begin(redirectUri, this.clock.now(), prompt)
    const loginCookie = await this.#sealer.seal('login', login, login.expiresAt)
    return { url, loginCookie, maxAgeSeconds: Math.ceil((login.expiresAt - this.clock.now()) / 1000) }
  }

  /**
   * Finishes an SSO sign-in. A user whose claims grant nothing gets NO_ROLE and no session: there is
   * nothing a session could show them.
   */
  async finishOidc(
    callbackUrl: URL,
    loginCookie: string | undefined,
  ): Promise<{ cookie: string; session: ConsoleSession; maxAgeSeconds: number }> {
    const oidc = this.#requireOidc()
    if (!loginCookie) {
      throw new SigilError(
        'SIGN_IN_FAILED',
        'sign-in failed: this browser did not start a sign-in here, or it took longer than 10 minutes; sign in again',
      )
    }
    const login = await this.#sealer.open<LoginState>('login', loginCookie)
    const user = await oidc.finish(callbackUrl, login)
    if (user.grants.length === 0) {
      throw new SigilError(
        'NO_ROLE',
        `you signed in as ${user.name}, but your account has no access to any trust domain; ask an administrator to give you a role`,
      )
    }
    const issued = await this.#issue({
      method: 'oidc',
      subject: `${user.issuer}#${user.subject}`,
      name: user.name,
      grants: user.grants,
    })
    const session = await this.authenticate(issued.cookie)
    return { cookie: issued.cookie, session, maxAgeSeconds: this.sessionTtlSeconds }
  }
}
