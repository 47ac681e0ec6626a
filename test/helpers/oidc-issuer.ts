// A real OpenID Connect provider for tests, written with jose, on an ephemeral loopback port: discovery,
// JWKS, an authorize endpoint with a small sign-in form (or automatic approval), the token endpoint with
// PKCE (S256) verification and client authentication, userinfo and end-session. Knobs make the next
// sign-in go wrong in one chosen way (audience, nonce, state, signature, expiry) so tests can check that
// the trust service refuses each.

import { createHash, randomBytes } from 'node:crypto'
import http from 'node:http'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'

export interface TestUser {
  sub: string
  email: string
  name: string
  groups: string[]
}

export type Tamper = 'audience' | 'nonce' | 'state' | 'signature' | 'expired'

export interface OidcIssuer {
  issuer: string
  clientId: string
  clientSecret: string
  /** Users who may sign in, by the username typed in the form. */
  users: Map<string, TestUser>
  /** When set, /authorize approves this user at once instead of showing the form. */
  autoApprove: string | undefined
  /** The next sign-in goes wrong this way (then the knob resets). */
  tamperNext: Tamper | undefined
  /** Requests the provider served, for assertions ("/token" and the like). */
  requests: string[]
  close(): Promise<void>
}

interface PendingCode {
  user: TestUser
  clientId: string
  redirectUri: string
  codeChallenge: string
  nonce: string | undefined
  tamper: Tamper | undefined
  expiresAt: number
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

function b64urlSha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}

async function readForm(req: http.IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
}

export async function startOidcIssuer(
  t: { teardown(fn: () => unknown): void },
  opts: { clientId?: string; clientSecret?: string; users?: TestUser[] } = {},
): Promise<OidcIssuer> {
  const signing = await generateKeyPair('ES256')
  const other = await generateKeyPair('ES256')
  const kid = randomBytes(6).toString('hex')
  const jwk = { ...(await exportJWK(signing.publicKey)), kid, alg: 'ES256', use: 'sig' }
  const codes = new Map<string, PendingCode>()
  const accessTokens = new Map<string, TestUser>()
  const server = http.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const issuer = `http://127.0.0.1:${port}`
  const state: OidcIssuer = {
    issuer,
    clientId: opts.clientId ?? 'sigil-console',
    clientSecret: opts.clientSecret ?? randomBytes(16).toString('hex'),
    users: new Map((opts.users ?? []).map((u) => [u.sub, u])),
    autoApprove: undefined,
    tamperNext: undefined,
    requests: [],
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
    res.end(JSON.stringify(body))
  }
  const oauthError = (res: http.ServerResponse, status: number, error: string, description: string) =>
    json(res, status, { error, error_description: description })

  /** Ends an authorization: a code for the user, back to the client with the state. */
  const approve = (res: http.ServerResponse, params: URLSearchParams, user: TestUser) => {
    const code = randomBytes(24).toString('base64url')
    const tamper = state.tamperNext
    state.tamperNext = undefined
    codes.set(code, {
      user,
      clientId: params.get('client_id')!,
      redirectUri: params.get('redirect_uri')!,
      codeChallenge: params.get('code_challenge')!,
      nonce: params.get('nonce') ?? undefined,
      tamper,
      expiresAt: Date.now() + 60_000,
    })
    const back = new URL(params.get('redirect_uri')!)
    back.searchParams.set('code', code)
    const st = params.get('state')
    if (st !== null) back.searchParams.set('state', tamper === 'state' ? `${st}-changed` : st)
    back.searchParams.set('iss', issuer)
    res.writeHead(302, { location: back.toString() })
    res.end()
  }

  server.on('request', (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', issuer)
      state.requests.push(url.pathname)
      if (url.pathname === '/.well-known/openid-configuration') {
        return json(res, 200, {
          issuer,
          authorization_endpoint: `${issuer}/authorize`,
          token_endpoint: `${issuer}/token`,
          jwks_uri: `${issuer}/jwks`,
          userinfo_endpoint: `${issuer}/userinfo`,
          end_session_endpoint: `${issuer}/logout`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['ES256'],
          code_challenge_methods_supported: ['S256'],
          token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
          scopes_supported: ['openid', 'profile', 'email', 'groups'],
        })
      }
      if (url.pathname === '/jwks') return json(res, 200, { keys: [jwk] })
      if (url.pathname === '/authorize' && req.method === 'GET') {
        const p = url.searchParams
        if (p.get('client_id') !== state.clientId)
          return oauthError(res, 400, 'invalid_client', 'unknown client')
        if (p.get('response_type') !== 'code' || p.get('code_challenge_method') !== 'S256') {
          return oauthError(res, 400, 'invalid_request', 'code flow with PKCE S256 only')
        }
        if (!p.get('code_challenge') || !p.get('redirect_uri'))
          return oauthError(res, 400, 'invalid_request', 'missing PKCE or redirect_uri')
        if (state.autoApprove) {
          const user = state.users.get(state.autoApprove)
          if (user) return approve(res, p, user)
        }
        const hidden = [...p]
          .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`)
          .join('')
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        return res.end(
          `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test identity provider</title></head><body><main><h1>Test identity provider</h1><form method="post" action="/authorize">${hidden}<label>Username <input name="username" autocomplete="username"></label> <button type="submit">Sign in</button></form></main></body></html>`,
        )
      }
      if (url.pathname === '/authorize' && req.method === 'POST') {
        const p = await readForm(req)
        const user = state.users.get(p.get('username') ?? '')
        if (!user) {
          res.writeHead(401, { 'content-type': 'text/html; charset=utf-8' })
          return res.end('<!doctype html><p role="alert">unknown user</p>')
        }
        p.delete('username')
        return approve(res, p, user)
      }
      if (url.pathname === '/token' && req.method === 'POST') {
        const p = await readForm(req)
        let clientId = p.get('client_id')
        let secret = p.get('client_secret')
        const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')
        if (basic) {
          const [id, sec] = Buffer.from(basic[1]!, 'base64').toString().split(':')
          clientId = decodeURIComponent(id ?? '')
          secret = decodeURIComponent(sec ?? '')
        }
        if (clientId !== state.clientId || secret !== state.clientSecret) {
          return oauthError(res, 401, 'invalid_client', 'client authentication failed')
        }
        if (p.get('grant_type') !== 'authorization_code')
          return oauthError(res, 400, 'unsupported_grant_type', 'code only')
        const pending = codes.get(p.get('code') ?? '')
        codes.delete(p.get('code') ?? '')
        if (!pending || pending.expiresAt < Date.now())
          return oauthError(res, 400, 'invalid_grant', 'unknown or used code')
        if (pending.redirectUri !== p.get('redirect_uri'))
          return oauthError(res, 400, 'invalid_grant', 'redirect_uri differs')
        if (b64urlSha256(p.get('code_verifier') ?? '') !== pending.codeChallenge) {
          return oauthError(res, 400, 'invalid_grant', 'PKCE verification failed')
        }
        const now = Math.floor(Date.now() / 1000)
        const tamper = pending.tamper
        const claims: Record<string, unknown> = {
          email: pending.user.email,
          name: pending.user.name,
          groups: pending.user.groups,
        }
        const nonce = tamper === 'nonce' ? 'not-the-nonce' : pending.nonce
        if (nonce !== undefined) claims.nonce = nonce
        const idToken = await new SignJWT(claims)
          .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
          .setIssuer(issuer)
          .setSubject(pending.user.sub)
          .setAudience(tamper === 'audience' ? 'some-other-client' : pending.clientId)
          .setIssuedAt(tamper === 'expired' ? now - 7200 : now)
          .setExpirationTime(tamper === 'expired' ? now - 3600 : now + 300)
          .sign(tamper === 'signature' ? other.privateKey : signing.privateKey)
        const accessToken = randomBytes(24).toString('base64url')
        accessTokens.set(accessToken, pending.user)
        return json(res, 200, {
          access_token: accessToken,
          token_type: 'Bearer',
          expires_in: 300,
          id_token: idToken,
        })
      }
      if (url.pathname === '/userinfo') {
        const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
        const user = token ? accessTokens.get(token) : undefined
        if (!user) return oauthError(res, 401, 'invalid_token', 'unknown access token')
        return json(res, 200, { sub: user.sub, email: user.email, name: user.name, groups: user.groups })
      }
      if (url.pathname === '/logout') {
        const back = url.searchParams.get('post_logout_redirect_uri')
        if (back) {
          res.writeHead(302, { location: back })
          return res.end()
        }
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        return res.end('<!doctype html><p>Signed out of the test identity provider.</p>')
      }
      res.writeHead(404)
      res.end()
    })().catch((err) => {
      res.writeHead(500)
      res.end(String(err))
    })
  })
  t.teardown(() => state.close())
  return state
}
