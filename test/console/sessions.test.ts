// Console sign-in and sessions through the API: the API-token sign-in, sealed session cookies (expired,
// forged, from another installation, of a revoked token), CSRF on every change, viewers refused by the
// API itself, single sign-on against a real OpenID Connect provider on loopback and each way a sign-in
// can go wrong (audience, nonce, state, signature, expiry, no role), and how the console is served.

import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { brotliCompressSync, gzipSync } from 'node:zlib'
import t, { type Test } from 'tap'
import { ManualClock } from '../../services/clock.ts'
import { ConfigError, resolveConfig } from '../../services/config.ts'
import { buildTestApp, type TestApp } from '../helpers/app.ts'
import { type OidcIssuer, startOidcIssuer, type Tamper } from '../helpers/oidc-issuer.ts'
import { tempDir } from '../helpers/tools.ts'

const HOST = 'sigil.test:8443'
const ORIGIN = `https://${HOST}`
const COOKIE = '__Host-sigil-session'

function cookieFrom(setCookie: unknown, name: string): string | undefined {
  const all = Array.isArray(setCookie) ? setCookie : setCookie ? [String(setCookie)] : []
  for (const c of all as string[]) {
    const m = new RegExp(`^${name}=([^;]*)`).exec(c)
    if (m) return m[1]
  }
  return undefined
}

async function req(
  h: TestApp,
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  url: string,
  opts: { cookie?: string; csrf?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const headers: Record<string, string> = { host: HOST, ...(opts.headers ?? {}) }
  if (opts.cookie !== undefined) headers.cookie = `${COOKIE}=${opts.cookie}`
  if (opts.csrf !== undefined) headers['x-sigil-csrf'] = opts.csrf
  const res = await h.app.inject({
    method,
    url,
    headers,
    ...(opts.body === undefined ? {} : { payload: opts.body as object }),
  })
  let json: any
  try {
    json = JSON.parse(res.body)
  } catch {
    json = undefined
  }
  return { status: res.statusCode, json, body: res.body, headers: res.headers }
}

async function tokenSignIn(h: TestApp, token = h.adminToken) {
  const res = await req(h, 'POST', '/auth/token-login', { body: { token } })
  if (res.status !== 200) throw new Error(`token sign-in failed: ${res.body}`)
  return { cookie: cookieFrom(res.headers['set-cookie'], COOKIE)!, session: res.json, raw: res }
}

t.test('sign-in with an API token, a sealed cookie, CSRF on every change', async (t) => {
  const clock = new ManualClock()
  const h = await buildTestApp(t, { clock })
  const anonymous = await req(h, 'GET', '/v1/session')
  t.same(anonymous.json, { authenticated: false, signIn: { oidc: false } }, 'no cookie, no session')

  const { cookie, session, raw } = await tokenSignIn(h)
  const set = String(raw.headers['set-cookie'])
  t.match(set, /^__Host-sigil-session=[^;]+; Path=\/; Max-Age=28800; Secure; HttpOnly; SameSite=Strict$/)
  t.equal(session.method, 'token')
  t.equal(session.user.name, 'test-admin')
  t.ok(session.installationAdmin)
  t.match(session.csrfToken, /^[A-Za-z0-9_-]{43}$/)
  t.notOk(cookie.includes(h.adminToken), 'the cookie does not hold the token')
  t.equal(cookie.split('.').length, 5, 'the cookie is a JWE (compact)')

  const me = await req(h, 'GET', '/v1/session', { cookie })
  t.equal(me.json.authenticated, true)
  t.equal(me.json.csrfToken, session.csrfToken, 'the same CSRF secret for the session')
  t.equal(me.headers['cache-control'], 'no-store')

  const list = await req(h, 'GET', '/v1/trust-domains', { cookie })
  t.equal(list.status, 200, 'reads need no CSRF token')

  const noCsrf = await req(h, 'POST', '/v1/trust-domains', { cookie, body: { name: 'a.org' } })
  t.equal(noCsrf.status, 403)
  t.equal(noCsrf.json.error.code, 'CSRF_TOKEN_INVALID')
  t.match(noCsrf.json.error.message, /x-sigil-csrf/)
  const wrongCsrf = await req(h, 'POST', '/v1/trust-domains', {
    cookie,
    csrf: 'A'.repeat(43),
    body: { name: 'a.org' },
  })
  t.equal(wrongCsrf.json.error.code, 'CSRF_TOKEN_INVALID')
  t.notOk(await h.store.getTrustDomain('a.org'), 'nothing was created without the CSRF token')
  const created = await req(h, 'POST', '/v1/trust-domains', {
    cookie,
    csrf: session.csrfToken,
    body: { name: 'a.org' },
  })
  t.equal(created.status, 201, created.body)
  const del = await req(h, 'DELETE', '/v1/trust-domains/a.org', { cookie })
  t.equal(del.json.error.code, 'CSRF_TOKEN_INVALID', 'DELETE needs it too')

  const bearer = await h.call('POST', '/v1/trust-domains', { name: 'b.org' })
  t.equal(bearer.statusCode, 201, 'a bearer token needs no CSRF token, as before')

  const audit = await h.call('GET', '/v1/trust-domains/a.org/audit')
  const create = audit.json.events.find((e: { action: string }) => e.action === 'trust-domain.create')
  t.match(create.actor, /^token:.+ \(test-admin\)$/, 'the audit log names the token behind the session')
  const installation = await h.call('GET', '/v1/audit')
  t.ok(
    installation.json.events.some((e: any) => e.action === 'console.sign-in' && e.result === 'ok'),
    'the sign-in is audited',
  )

  clock.advance(8 * 3600_000 + 1000)
  const expired = await req(h, 'GET', '/v1/trust-domains', { cookie })
  t.equal(expired.status, 401)
  t.equal(expired.json.error.code, 'SESSION_EXPIRED')
  t.match(expired.json.error.message, /sign in again/)
  const expiredSession = await req(h, 'GET', '/v1/session', { cookie })
  t.same(expiredSession.json.problem.code, 'SESSION_EXPIRED')
  t.equal(expiredSession.json.authenticated, false)
  t.match(String(expiredSession.headers['set-cookie']), /^__Host-sigil-session=; .*Max-Age=0/, 'cleared')
})

t.test('forged, damaged and foreign cookies, revoked tokens, bad sign-ins', async (t) => {
  const h = await buildTestApp(t)
  const { cookie } = await tokenSignIn(h)
  const parts = cookie.split('.')
  const flipped = parts[3]!.startsWith('A') ? `B${parts[3]!.slice(1)}` : `A${parts[3]!.slice(1)}`
  for (const [what, forged] of [
    ['garbage', 'not-a-session'],
    ['a flipped ciphertext byte', [...parts.slice(0, 3), flipped, parts[4]].join('.')],
    ['an unsigned JWT', 'eyJhbGciOiJub25lIn0.eyJtZXRob2QiOiJvaWRjIn0.'],
  ] as const) {
    const res = await req(h, 'GET', '/v1/trust-domains', { cookie: forged })
    t.equal(res.status, 401, what)
    t.equal(res.json.error.code, 'SESSION_INVALID', what)
    t.match(res.json.error.message, /sign in again/)
  }
  const other = await buildTestApp(t)
  const foreign = await tokenSignIn(other)
  const res = await req(h, 'GET', '/v1/trust-domains', { cookie: foreign.cookie })
  t.equal(res.json.error.code, 'SESSION_INVALID', "another installation's cookie is refused")

  const { token, record } = await h.services.apiTokens.create(undefined, {
    name: 'short-lived',
    grants: [{ trustDomain: '*', role: 'viewer' }],
  })
  const viewerSession = await tokenSignIn(h, token)
  t.equal((await req(h, 'GET', '/v1/trust-domains', { cookie: viewerSession.cookie })).status, 200)
  await h.store.deleteApiToken(record.id)
  const revoked = await req(h, 'GET', '/v1/trust-domains', { cookie: viewerSession.cookie })
  t.equal(revoked.json.error.code, 'SESSION_INVALID', 'revoking the token ends its sessions')
  t.match(revoked.json.error.message, /revoked/)

  const bad = await req(h, 'POST', '/auth/token-login', { body: { token: 'sat_nope' } })
  t.equal(bad.status, 401)
  t.equal(bad.json.error.code, 'TOKEN_INVALID')
  t.notOk(bad.headers['set-cookie'], 'no cookie for a bad token')
  const cross = await req(h, 'POST', '/auth/token-login', {
    body: { token: h.adminToken },
    headers: { origin: 'https://evil.example' },
  })
  t.equal(cross.status, 403)
  t.equal(cross.json.error.code, 'CROSS_ORIGIN_REFUSED')
  const crossSite = await req(h, 'POST', '/auth/token-login', {
    body: { token: h.adminToken },
    headers: { 'sec-fetch-site': 'cross-site' },
  })
  t.equal(crossSite.json.error.code, 'CROSS_ORIGIN_REFUSED')
  const sameOrigin = await req(h, 'POST', '/auth/token-login', {
    body: { token: h.adminToken },
    headers: { origin: ORIGIN, 'sec-fetch-site': 'same-origin' },
  })
  t.equal(sameOrigin.status, 200)

  const out = await req(h, 'POST', '/auth/logout', { cookie })
  t.equal(out.status, 200)
  t.match(String(out.headers['set-cookie']), /^__Host-sigil-session=; Path=\/; Max-Age=0/)
  const sso = await req(h, 'GET', '/auth/login')
  t.equal(sso.status, 404)
  t.match(sso.body, /single sign-on is not configured/)
  t.match(sso.body, /href="\/"/, 'with a way back to sign-in')
})

async function ssoApp(t: Test, issuer: OidcIssuer, clock?: ManualClock) {
  return buildTestApp(t, {
    ...(clock ? { clock } : {}),
    console: {
      sessionTtl: 3600,
      oidc: {
        issuer: issuer.issuer,
        clientId: issuer.clientId,
        clientSecret: issuer.clientSecret,
        scopes: ['openid', 'email', 'profile'],
        rolesClaim: 'groups',
        rolePrefix: 'sigil:',
        roleMapping: { 'platform-team': ['*:admin'] },
        nameClaim: 'email',
        allowInsecureLoopbackIssuer: true,
      },
    },
  })
}

/** Runs a whole SSO sign-in: /auth/login, the provider (auto-approving `user`), /auth/callback. */
async function ssoSignIn(
  h: TestApp,
  issuer: OidcIssuer,
  user: string,
  opts: { tamper?: Tamper; dropLoginCookie?: boolean } = {},
) {
  issuer.autoApprove = user
  issuer.tamperNext = opts.tamper
  const start = await req(h, 'GET', '/auth/login')
  if (start.status !== 303) throw new Error(`/auth/login answered ${start.status}: ${start.body}`)
  const loginCookie = cookieFrom(start.headers['set-cookie'], '__Host-sigil-login')!
  const authorize = new URL(String(start.headers.location))
  const back = await fetch(authorize, { redirect: 'manual' })
  const callback = new URL(back.headers.get('location')!)
  const headers: Record<string, string> = { host: HOST }
  if (!opts.dropLoginCookie) headers.cookie = `__Host-sigil-login=${loginCookie}`
  const res = await h.app.inject({ method: 'GET', url: `${callback.pathname}${callback.search}`, headers })
  return { start, authorize, callback, res, cookie: cookieFrom(res.headers['set-cookie'], COOKIE) }
}

t.test('single sign-on against a real OpenID Connect provider', async (t) => {
  const issuer = await startOidcIssuer(t, {
    users: [
      { sub: 'alice', email: 'alice@example.com', name: 'Alice', groups: ['platform-team'] },
      { sub: 'bob', email: 'bob@example.com', name: 'Bob', groups: ['sigil:a.org:viewer', 'unrelated'] },
      { sub: 'dora', email: 'dora@example.com', name: 'Dora', groups: ['sigil:a.org:admin'] },
      { sub: 'carol', email: 'carol@example.com', name: 'Carol', groups: ['marketing'] },
    ],
  })
  const h = await ssoApp(t, issuer)
  await h.call('POST', '/v1/trust-domains', { name: 'a.org' })
  await h.call('POST', '/v1/trust-domains', { name: 'b.org' })
  t.same((await req(h, 'GET', '/v1/session')).json.signIn, { oidc: true })

  const alice = await ssoSignIn(h, issuer, 'alice')
  const auth = alice.authorize.searchParams
  t.equal(auth.get('code_challenge_method'), 'S256', 'PKCE')
  t.match(auth.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/)
  t.ok(auth.get('state') && auth.get('nonce'), 'state and nonce')
  t.equal(auth.get('redirect_uri'), `${ORIGIN}/auth/callback`)
  t.match(
    String(alice.start.headers['set-cookie']),
    /^__Host-sigil-login=[^;]+; Path=\/; Max-Age=600; Secure; HttpOnly; SameSite=Lax$/,
    'the sign-in state rides a Lax cookie (the provider sends the browser back cross-site)',
  )
  t.equal(alice.res.statusCode, 303, alice.res.body)
  t.equal(alice.res.headers.location, '/')
  t.ok(alice.cookie, 'a session cookie')
  const aliceSession = (await req(h, 'GET', '/v1/session', { cookie: alice.cookie! })).json
  t.equal(aliceSession.method, 'oidc')
  t.equal(aliceSession.user.name, 'alice@example.com')
  t.equal(aliceSession.user.subject, `${issuer.issuer}#alice`)
  t.same(aliceSession.grants, [{ trustDomain: '*', role: 'admin' }], 'roleMapping: platform-team is *:admin')
  const entry = await req(h, 'POST', '/v1/trust-domains/a.org/entries', {
    cookie: alice.cookie!,
    csrf: aliceSession.csrfToken,
    body: {
      spiffeId: 'spiffe://a.org/web',
      parentId: 'spiffe://a.org/sigil/server',
      selectors: ['unix:uid:1'],
    },
  })
  t.equal(entry.status, 201, entry.body)
  const audit = await h.call('GET', '/v1/trust-domains/a.org/audit')
  t.equal(
    audit.json.events.find((e: any) => e.action === 'entry.create').actor,
    `oidc:${issuer.issuer}#alice (alice@example.com)`,
    'the audit log names the user',
  )

  const bob = await ssoSignIn(h, issuer, 'bob')
  const bobSession = (await req(h, 'GET', '/v1/session', { cookie: bob.cookie! })).json
  t.same(bobSession.grants, [{ trustDomain: 'a.org', role: 'viewer' }], 'sigil:<td>:<role> claim values')
  const seen = await req(h, 'GET', '/v1/trust-domains', { cookie: bob.cookie! })
  t.same(
    seen.json.trustDomains.map((d: { name: string }) => d.name),
    ['a.org'],
    'a viewer sees only their trust domain',
  )
  const csrf = bobSession.csrfToken
  const entryId = entry.json.id
  for (const [method, url, body] of [
    ['POST', '/v1/trust-domains', { name: 'c.org' }],
    ['DELETE', '/v1/trust-domains/a.org', undefined],
    ['PATCH', '/v1/trust-domains/a.org', { settings: { x509MaxTtl: 7200 } }],
    [
      'POST',
      '/v1/trust-domains/a.org/entries',
      { spiffeId: 'spiffe://a.org/x', parentId: 'spiffe://a.org/sigil/server', selectors: ['unix:uid:2'] },
    ],
    ['PATCH', `/v1/trust-domains/a.org/entries/${entryId}`, { selectors: ['unix:uid:3'] }],
    ['DELETE', `/v1/trust-domains/a.org/entries/${entryId}`, undefined],
    ['POST', '/v1/trust-domains/a.org/join-tokens', {}],
    ['PUT', '/v1/trust-domains/a.org/policy', { text: 'mode: explicit\n' }],
    ['PUT', '/v1/trust-domains/a.org/policy/mode', { mode: 'explicit' }],
    ['POST', '/v1/trust-domains/a.org/agents/spiffe%3A%2F%2Fa.org%2Fsigil%2Fagent%2Fx/ban', undefined],
    ['GET', '/v1/trust-domains/b.org', undefined],
  ] as const) {
    const res = await req(h, method, url, { cookie: bob.cookie!, csrf, ...(body ? { body } : {}) })
    t.equal(res.status, 403, `viewer: ${method} ${url}`)
    t.equal(res.json.error.code, 'FORBIDDEN')
    t.match(res.json.error.message, /^user "bob@example.com" (has no|is not)/)
  }
  const dry = await req(h, 'POST', '/v1/trust-domains/a.org/policy/dry-run', {
    cookie: bob.cookie!,
    csrf,
    body: {},
  })
  t.equal(dry.status, 200, 'a viewer may ask questions')
  const validate = await req(h, 'POST', '/v1/trust-domains/a.org/policy/validate', {
    cookie: bob.cookie!,
    csrf,
    body: {
      text: 'mode: explicit\nrules:\n  - name: x\n    from: { spiffeId: "spiffe://a.org/web" }\n    to: { ports: [99999] }\n',
    },
  })
  t.equal(validate.json.valid, false)
  t.equal(validate.json.error.code, 'POLICY_INVALID')
  t.equal(validate.json.error.details.line, 5, 'the line of the problem')

  const dora = await ssoSignIn(h, issuer, 'dora')
  const doraSession = (await req(h, 'GET', '/v1/session', { cookie: dora.cookie! })).json
  const doraCreate = await req(h, 'POST', '/v1/trust-domains/a.org/join-tokens', {
    cookie: dora.cookie!,
    csrf: doraSession.csrfToken,
    body: {},
  })
  t.equal(doraCreate.status, 201, 'an admin of a.org may change a.org')
  const doraOther = await req(h, 'POST', '/v1/trust-domains', {
    cookie: dora.cookie!,
    csrf: doraSession.csrfToken,
    body: { name: 'd.org' },
  })
  t.equal(doraOther.json.error.code, 'FORBIDDEN', 'but not create trust domains')

  const carol = await ssoSignIn(h, issuer, 'carol')
  t.equal(carol.res.statusCode, 403)
  t.notOk(carol.cookie, 'no session for a user without a role')
  t.match(carol.res.body, /carol@example.com/)
  t.match(carol.res.body, /no access to any trust domain; ask an administrator/)
  t.match(carol.res.body, /NO_ROLE/)
  t.match(
    carol.res.body,
    /<a href="http:\/\/127\.0\.0\.1:\d+\/logout\?[^"]*">Sign out<\/a>/,
    'a sign-out link',
  )
  t.match(String(carol.res.headers['content-security-policy']), /default-src 'none'/)

  for (const [tamper, why] of [
    ['audience', /aud/],
    ['nonce', /nonce/],
    ['state', /state/],
    ['signature', /signature/i],
    ['expired', /exp/],
  ] as const) {
    const bad = await ssoSignIn(h, issuer, 'alice', { tamper })
    t.equal(bad.res.statusCode, 401, `${tamper}: ${bad.res.body.slice(0, 200)}`)
    t.notOk(bad.cookie, `${tamper}: no session`)
    t.match(bad.res.body, /Sign-in failed/)
    t.match(bad.res.body, /SIGN_IN_FAILED/)
    t.match(bad.res.body, why, `${tamper}: the page says what did not check out`)
    t.match(bad.res.body, /<a href="\/">Back to sign-in<\/a>/)
  }
  const noState = await ssoSignIn(h, issuer, 'alice', { dropLoginCookie: true })
  t.equal(noState.res.statusCode, 401)
  t.match(noState.res.body, /did not start a sign-in here/)
  const started = await req(h, 'GET', '/auth/login')
  const login = cookieFrom(started.headers['set-cookie'], '__Host-sigil-login')!
  const idpError = await req(
    h,
    'GET',
    '/auth/callback?error=access_denied&error_description=%3Cb%3Enope%3C%2Fb%3E',
    {
      headers: { cookie: `__Host-sigil-login=${login}` },
    },
  )
  t.equal(idpError.status, 401)
  t.match(idpError.body, /&#60;b&#62;nope/, "the provider's words are shown as text")

  const refusals = (await h.call('GET', '/v1/audit')).json.events.filter(
    (e: any) => e.action === 'console.sign-in' && e.result === 'error',
  )
  t.ok(refusals.length >= 7, 'refused sign-ins are audited')

  const out = await req(h, 'POST', '/auth/logout', { cookie: alice.cookie! })
  t.match(out.json.endSessionUrl, /\/logout\?/, "the provider's sign-out page for an SSO session")
})

t.test('an SSO session expires; its grants are those of its sign-in', async (t) => {
  const issuer = await startOidcIssuer(t, {
    users: [{ sub: 'bob', email: 'bob@example.com', name: 'Bob', groups: ['sigil:a.org:viewer'] }],
  })
  const clock = new ManualClock()
  const h = await ssoApp(t, issuer, clock)
  const bob = await ssoSignIn(h, issuer, 'bob')
  t.ok(bob.cookie)
  clock.advance(3600_000 + 1000)
  const res = await req(h, 'GET', '/v1/trust-domains', { cookie: bob.cookie! })
  t.equal(res.json.error.code, 'SESSION_EXPIRED')
})

t.test('an unreachable provider is reported, and sign-in by token still works', async (t) => {
  const h = await buildTestApp(t, {
    console: {
      sessionTtl: 3600,
      oidc: {
        issuer: 'http://127.0.0.1:9/',
        clientId: 'x',
        scopes: ['openid'],
        rolesClaim: 'groups',
        rolePrefix: 'sigil:',
        roleMapping: {},
        nameClaim: 'email',
        allowInsecureLoopbackIssuer: true,
      },
    },
  })
  const res = await req(h, 'GET', '/auth/login')
  t.equal(res.status, 503)
  t.match(res.body, /OIDC_UNAVAILABLE/)
  t.match(res.body, /sign in with an API token/)
  t.equal((await req(h, 'POST', '/auth/token-login', { body: { token: h.adminToken } })).status, 200)
})

t.test('console configuration is checked at the edge', async (t) => {
  const oidc = { issuer: 'https://id.example.com', clientId: 'sigil' }
  const ok = resolveConfig({ file: { console: { sessionTtl: '2h', oidc } }, env: {} })
  t.equal(ok.console.sessionTtl, 7200)
  t.same(ok.console.oidc?.scopes, ['openid', 'profile', 'email'])
  t.equal(ok.console.oidc?.rolesClaim, 'groups')
  t.equal(ok.console.oidc?.allowInsecureLoopbackIssuer, false)
  const secret = resolveConfig({ file: { console: { oidc } }, env: { SIGIL_OIDC_CLIENT_SECRET: 's3' } })
  t.equal(secret.console.oidc?.clientSecret, 's3', 'the secret may come from the environment')
  t.equal(resolveConfig({ env: {} }).console.sessionTtl, 8 * 3600, 'sessions last 8h by default')
  t.throws(
    () =>
      resolveConfig({ file: { console: { oidc: { ...oidc, issuer: 'http://id.example.com' } } }, env: {} }),
    ConfigError,
  )
  t.throws(
    () =>
      resolveConfig({
        file: {
          console: { oidc: { ...oidc, issuer: 'http://10.0.0.1', allowInsecureLoopbackIssuer: true } },
        },
        env: {},
      }),
    /only on a loopback host/,
  )
  const loopback = resolveConfig({
    file: {
      console: { oidc: { ...oidc, issuer: 'http://127.0.0.1:5556', allowInsecureLoopbackIssuer: true } },
    },
    env: {},
  })
  t.equal(loopback.console.oidc?.allowInsecureLoopbackIssuer, true)
  t.throws(
    () =>
      resolveConfig({
        file: { console: { oidc: { ...oidc, roleMapping: { x: ['a.org:root'] } } } },
        env: {},
      }),
    /is not a grant/,
  )
  t.throws(
    () => resolveConfig({ file: { console: { oidc: { ...oidc, extra: 1 } } }, env: {} }),
    /unknown key/,
  )
  t.throws(() => resolveConfig({ file: { console: { sessionTtl: '10s' } }, env: {} }), /sessionTtl/)
})

t.test('the console is served compressed, cached by hash, under a strict CSP', async (t) => {
  const dist = tempDir(t)
  mkdirSync(path.join(dist, 'assets'))
  const html = '<!doctype html><script type="module" src="/assets/index-abc123.js"></script>'
  writeFileSync(path.join(dist, 'index.html'), html)
  const js = `console.log(${JSON.stringify('x'.repeat(5000))})`
  writeFileSync(path.join(dist, 'assets/index-abc123.js'), js)
  writeFileSync(path.join(dist, 'assets/index-abc123.js.br'), brotliCompressSync(js))
  writeFileSync(path.join(dist, 'assets/index-abc123.js.gz'), gzipSync(js))
  const h = await buildTestApp(t, { consoleDist: dist })
  const page = await h.app.inject({ method: 'GET', url: '/' })
  t.equal(page.statusCode, 200)
  t.equal(page.body, html)
  const csp = String(page.headers['content-security-policy'])
  t.match(csp, /script-src 'self'(;|$)/, 'scripts only from this origin, none inline')
  t.match(csp, /frame-ancestors 'none'/)
  t.equal(page.headers['x-frame-options'], 'DENY')
  t.equal(page.headers['cache-control'], 'no-cache')
  const br = await h.app.inject({
    method: 'GET',
    url: '/assets/index-abc123.js',
    headers: { 'accept-encoding': 'gzip, deflate, br' },
  })
  t.equal(br.headers['content-encoding'], 'br')
  t.equal(br.headers['cache-control'], 'public, max-age=31536000, immutable')
  t.match(String(br.headers['content-type']), /^text\/javascript/)
  t.ok(br.rawPayload.length < js.length / 10, 'precompressed')
  const gz = await h.app.inject({
    method: 'GET',
    url: '/assets/index-abc123.js',
    headers: { 'accept-encoding': 'gzip' },
  })
  t.equal(gz.headers['content-encoding'], 'gzip')
  const plain = await h.app.inject({ method: 'GET', url: '/assets/index-abc123.js' })
  t.equal(plain.body, js)
  t.equal((await h.app.inject({ method: 'GET', url: '/assets/..%2Findex.html' })).statusCode, 404)
  t.equal((await h.app.inject({ method: 'GET', url: '/assets/nope.js' })).statusCode, 404)

  const bare = await buildTestApp(t, { consoleDist: path.join(dist, 'missing') })
  const missing = await bare.app.inject({ method: 'GET', url: '/' })
  t.equal(missing.statusCode, 503)
  t.match(missing.body, /npm run setup/, 'a missing build says how to build it')
})
