// Single sign-on for the console: OpenID Connect, authorization code flow with PKCE (S256), state and
// nonce, through openid-client. The provider's claim `rolesClaim` maps to grants per trust domain; a
// user whose claims map to none gets no session. Every check the library makes (issuer, audience,
// nonce, state, signature, expiry) is kept; an http:// issuer is accepted only when the configuration
// says so explicitly, and only on a loopback host (config.ts), for tests with a local provider.

import * as oidc from 'openid-client'
import type { OidcConfig } from '../config.ts'
import { SigilError } from '../errors.ts'
import type { Grant, Role } from '../store/store.ts'
import { TrustDomainService } from '../tenancy/trust-domains.ts'
import type { LoginState } from './sessions.ts'

/** Sign-ins must finish within this, ms. */
export const LOGIN_TTL_MS = 10 * 60_000

export interface OidcUser {
  issuer: string
  subject: string
  name: string
  grants: Grant[]
}

function grantOf(text: string): Grant | undefined {
  const at = text.lastIndexOf(':')
  if (at <= 0) return undefined
  const trustDomain = text.slice(0, at)
  const role = text.slice(at + 1)
  if (role !== 'admin' && role !== 'viewer') return undefined
  if (trustDomain !== '*') {
    try {
      TrustDomainService.validateName(trustDomain)
    } catch {
      return undefined
    }
  }
  return { trustDomain, role: role as Role }
}

/**
 * The grants a user's claims give: each value `<prefix><td or *>:<role>`, and each value named in
 * `roleMapping`. The strongest role per trust domain; unknown values are ignored.
 */
export function grantsFromClaims(
  claims: Record<string, unknown>,
  config: Pick<OidcConfig, 'rolesClaim' | 'rolePrefix' | 'roleMapping'>,
): Grant[] {
  const raw = claims[config.rolesClaim]
  const values = (Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(/[\s,]+/) : []).filter(
    (v): v is string => typeof v === 'string' && v.length > 0,
  )
  const best = new Map<string, Role>()
  const add = (g: Grant | undefined) => {
    if (!g) return
    if (best.get(g.trustDomain) !== 'admin') best.set(g.trustDomain, g.role)
  }
  for (const value of values) {
    if (config.rolePrefix && value.startsWith(config.rolePrefix)) {
      add(grantOf(value.slice(config.rolePrefix.length)))
    }
    for (const mapped of config.roleMapping[value] ?? []) add(grantOf(mapped))
  }
  return [...best].map(([trustDomain, role]) => ({ trustDomain, role }))
}

/** The most specific message in an error's cause chain (openid-client wraps oauth4webapi's precise ones). */
function detail(err: unknown): string {
  let message = err instanceof Error ? err.message : String(err)
  let at: unknown = err
  for (let depth = 0; depth < 5 && at instanceof Error && at.cause instanceof Error; depth++) {
    at = at.cause
    message = (at as Error).message || message
  }
  return message
}

function failed(why: string, cause?: unknown): SigilError {
  return new SigilError('SIGN_IN_FAILED', `sign-in failed: ${why}; sign in again`, {
    ...(cause === undefined ? {} : { cause }),
  })
}

export class OidcSignIn {
  #configuration: Promise<oidc.Configuration> | undefined

  constructor(private readonly config: OidcConfig) {}

  get issuer(): string {
    return this.config.issuer
  }

  /** The configured redirect URI; absent: https://<the host the browser used>/auth/callback. */
  get redirectUri(): string | undefined {
    return this.config.redirectUri
  }

  /** The provider's metadata, discovered once (again after a failure). */
  #discover(): Promise<oidc.Configuration> {
    this.#configuration ??= oidc
      .discovery(
        new URL(this.config.issuer),
        this.config.clientId,
        this.config.clientSecret,
        this.config.clientSecret ? oidc.ClientSecretBasic(this.config.clientSecret) : oidc.None(),
        {
          timeout: 10,
          // ID token signatures are checked against the provider's JWKS too, not only TLS to its
          // token endpoint (which a loopback test issuer does not even have).
          execute: [
            oidc.enableNonRepudiationChecks,
            ...(this.config.allowInsecureLoopbackIssuer ? [oidc.allowInsecureRequests] : []),
          ],
        },
      )
      .catch((err) => {
        this.#configuration = undefined
        throw new SigilError(
          'OIDC_UNAVAILABLE',
          `the identity provider ${this.config.issuer} could not be reached or described itself wrongly (${(err as Error).message}); try again, or sign in with an API token`,
          { cause: err },
        )
      })
    return this.#configuration
  }

  /** Starts a sign-in: where to send the browser, and the state to keep until it comes back. */
  async begin(redirectUri: string, now: number, prompt?: string): Promise<{ url: URL; login: LoginState }> {
    const configuration = await this.#discover()
    const codeVerifier = oidc.randomPKCECodeVerifier()
    const login: LoginState = {
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      codeVerifier,
      redirectUri,
      expiresAt: now + LOGIN_TTL_MS,
    }
    const parameters: Record<string, string> = {
      redirect_uri: redirectUri,
      scope: this.config.scopes.join(' '),
      response_type: 'code',
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state: login.state,
      nonce: login.nonce,
    }
    if (prompt) parameters.prompt = prompt
    return { url: oidc.buildAuthorizationUrl(configuration, parameters), login }
  }

  /** Finishes a sign-in from the callback URL; every check of the ID token is the library's. */
  async finish(callbackUrl: URL, login: LoginState): Promise<OidcUser> {
    const configuration = await this.#discover()
    const error = callbackUrl.searchParams.get('error')
    if (error) {
      const description = callbackUrl.searchParams.get('error_description')
      throw failed(`the identity provider said ${error}${description ? ` (${description})` : ''}`)
    }
    // The callback URL the provider redirected to, as the library expects it (our redirect URI).
    const current = new URL(login.redirectUri)
    current.search = callbackUrl.search
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>
    try {
      tokens = await oidc.authorizationCodeGrant(configuration, current, {
        pkceCodeVerifier: login.codeVerifier,
        expectedState: login.state,
        expectedNonce: login.nonce,
        idTokenExpected: true,
      })
    } catch (err) {
      throw failed(`the identity provider's answer did not check out (${detail(err)})`, err)
    }
    const claims = { ...(tokens.claims() as Record<string, unknown>) }
    if (claims[this.config.rolesClaim] === undefined && configuration.serverMetadata().userinfo_endpoint) {
      try {
        const info = await oidc.fetchUserInfo(configuration, tokens.access_token, String(claims.sub))
        for (const [k, v] of Object.entries(info)) if (claims[k] === undefined) claims[k] = v
      } catch (err) {
        throw failed(`the identity provider's userinfo endpoint refused (${detail(err)})`, err)
      }
    }
    const subject = String(claims.sub)
    const named = claims[this.config.nameClaim]
    return {
      issuer: this.config.issuer,
      subject,
      name: typeof named === 'string' && named.length > 0 ? named.slice(0, 256) : subject,
      grants: grantsFromClaims(claims, this.config),
    }
  }

  /** Where to send the browser to sign out at the provider too, when it says it supports that. */
  async endSessionUrl(postLogoutRedirectUri: string): Promise<string | undefined> {
    const configuration = await this.#discover().catch(() => undefined)
    if (!configuration?.serverMetadata().end_session_endpoint) return undefined
    return oidc
      .buildEndSessionUrl(configuration, { post_logout_redirect_uri: postLogoutRedirectUri })
      .toString()
  }
}
