// Every bad input: a 4xx with a stable code, nothing changed, the server still healthy.

import t, { type Test } from 'tap'
import { buildTestApp, type TestApp } from '../helpers/app.ts'
import { makeCsr } from '../helpers/csr.ts'

async function snapshot(h: TestApp) {
  const tds = await h.store.listTrustDomains()
  const entries = await Promise.all(tds.map((td) => h.store.listEntries(td.name)))
  const tokens = await Promise.all(tds.map((td) => h.store.listJoinTokens(td.name)))
  return JSON.stringify({ tds, entries, tokens, api: (await h.store.listApiTokens()).length })
}

async function setup(t: Test) {
  const h = await buildTestApp(t)
  await h.call('POST', '/v1/trust-domains', { name: 'a.org' })
  await h.call('POST', '/v1/trust-domains', { name: 'b.org' })
  await h.call('POST', '/v1/trust-domains/a.org/entries', {
    spiffeId: 'spiffe://a.org/web',
    parentId: 'spiffe://a.org/sigil/server',
    selectors: ['unix:uid:1'],
  })
  const viewer = await h.services.apiTokens.create(undefined, {
    name: 'viewer-a',
    grants: [{ trustDomain: 'a.org', role: 'viewer' }],
  })
  const adminA = await h.services.apiTokens.create(undefined, {
    name: 'admin-a',
    grants: [{ trustDomain: 'a.org', role: 'admin' }],
  })
  return { h, viewer: viewer.token, adminA: adminA.token }
}

async function refused(
  t: Test,
  h: TestApp,
  req: {
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE'
    url: string
    payload?: unknown
    headers?: Record<string, string>
    token?: string | null
  },
  status: number,
  code: string,
  message?: RegExp,
) {
  const before = await snapshot(h)
  const headers: Record<string, string> = { ...(req.headers ?? {}) }
  const token = req.token === undefined ? h.adminToken : req.token
  if (token !== null) headers.authorization = `Bearer ${token}`
  const res = await h.app.inject({
    method: req.method,
    url: req.url,
    headers,
    ...(req.payload === undefined ? {} : { payload: req.payload as string }),
  })
  t.equal(res.statusCode, status, `${req.method} ${req.url}: ${res.body.slice(0, 300)}`)
  const json = JSON.parse(res.body)
  t.equal(json.error.code, code)
  t.type(json.error.message, 'string')
  if (message) t.match(json.error.message, message)
  t.equal(await snapshot(h), before, 'nothing changed')
  t.equal((await h.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'still healthy')
  return json
}

t.test('malformed request bodies', async (t) => {
  const { h } = await setup(t)
  const json = { 'content-type': 'application/json' }
  await refused(
    t,
    h,
    { method: 'POST', url: '/v1/trust-domains', payload: '{"name": "x.org",', headers: json },
    400,
    'INVALID_JSON',
  )
  await refused(
    t,
    h,
    { method: 'POST', url: '/v1/trust-domains', payload: '', headers: json },
    400,
    'INVALID_JSON',
  )
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: '/v1/trust-domains',
      payload: JSON.stringify({ name: 'x.org', color: 'red' }),
      headers: json,
    },
    400,
    'UNKNOWN_FIELD',
    /"color"/,
  )
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: '/v1/trust-domains/a.org/entries',
      payload: JSON.stringify({
        spiffeId: 'spiffe://a.org/x',
        parentId: 'spiffe://a.org/sigil/server',
        selectors: ['unix:uid:1'],
        nope: 1,
      }),
      headers: json,
    },
    400,
    'UNKNOWN_FIELD',
  )
  await refused(
    t,
    h,
    { method: 'POST', url: '/v1/trust-domains', payload: JSON.stringify({ name: 5 }), headers: json },
    400,
    'VALIDATION_FAILED',
  )
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: '/v1/trust-domains',
      payload: 'name=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    },
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  )
  const big = JSON.stringify({ name: 'x.org', pad: 'x'.repeat(20 * 1024 * 1024) })
  await refused(
    t,
    h,
    { method: 'POST', url: '/v1/trust-domains', payload: big, headers: json },
    413,
    'BODY_TOO_LARGE',
  )
  await refused(t, h, { method: 'GET', url: '/v1/nothing-here' }, 404, 'NOT_FOUND')
})

t.test('bad CSRs', async (t) => {
  const { h } = await setup(t)
  const url = '/v1/trust-domains/a.org/svids/x509'
  const csr = await makeCsr()
  const other = await makeCsr()
  const cases: Array<[string, string, string]> = [
    ['not base64', 'not a csr!!', 'CSR_MALFORMED'],
    ['not DER', Buffer.from('hello world, not DER').toString('base64'), 'CSR_MALFORMED'],
    ['truncated', csr.der.subarray(0, csr.der.length - 20).toString('base64'), 'CSR_MALFORMED'],
    ['trailing bytes', Buffer.concat([csr.der, Buffer.from([0, 0])]).toString('base64'), 'CSR_MALFORMED'],
    ['empty PEM', '-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----', 'CSR_MALFORMED'],
  ]
  // Signature that does not match the key: flip a byte of the signature.
  const flipped = Buffer.from(csr.der)
  flipped[flipped.length - 5] = flipped[flipped.length - 5]! ^ 0xff
  cases.push(['flipped signature', flipped.toString('base64'), 'CSR_SIGNATURE_INVALID'])
  // Another key's SPKI with this CSR's signature.
  const spliced = splice(csr.der, other.der)
  if (spliced) cases.push(['another key', spliced.toString('base64'), 'CSR_SIGNATURE_INVALID'])
  for (const [what, value, code] of cases) {
    t.comment(what)
    await refused(
      t,
      h,
      { method: 'POST', url, payload: { csr: value, spiffeId: 'spiffe://a.org/web' } },
      400,
      code,
    )
  }
  t.equal(cases.length, 7, 'every CSR case ran')
})

/** Replaces the SubjectPublicKeyInfo in `csr` with the one from `donor` (same curve, same length). */
function splice(csr: Buffer, donor: Buffer): Buffer | undefined {
  const marker = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex')
  const a = csr.indexOf(marker)
  const b = donor.indexOf(marker)
  if (a < 0 || b < 0) return undefined
  const out = Buffer.from(csr)
  donor.copy(out, a, b, b + 91)
  return out
}

t.test('malformed SPIFFE IDs and foreign trust domains', async (t) => {
  const { h } = await setup(t)
  const csr = await makeCsr()
  const bad = [
    'a.org/web',
    'SPIFFE://a.org/web',
    'spiffe:/a.org/web',
    'http://a.org/web',
    'spiffe://',
    'spiffe:///web',
    'spiffe://A.org/web',
    'spiffe://a.org:8080/web',
    'spiffe://user@a.org/web',
    'spiffe://a.org//web',
    'spiffe://a.org/./web',
    'spiffe://a.org/../web',
    'spiffe://a.org/web/',
    'spiffe://a.org/w%20eb',
    'spiffe://a.org/web?x=1',
    'spiffe://a.org/web#frag',
    'spiffe://a.org/we b',
    'spiffe://a.org/we\u0000b',
    'spiffe://a.org/<script>',
    `spiffe://a.org/${'a'.repeat(2100)}`,
  ]
  for (const id of bad) {
    await refused(
      t,
      h,
      { method: 'POST', url: '/v1/trust-domains/a.org/svids/x509', payload: { csr: csr.pem, spiffeId: id } },
      400,
      'SPIFFE_ID_INVALID',
    )
    await refused(
      t,
      h,
      {
        method: 'POST',
        url: '/v1/trust-domains/a.org/entries',
        payload: { spiffeId: id, parentId: 'spiffe://a.org/sigil/server', selectors: ['unix:uid:1'] },
      },
      400,
      'SPIFFE_ID_INVALID',
    )
  }
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: '/v1/trust-domains/a.org/svids/x509',
      payload: { csr: csr.pem, spiffeId: 'spiffe://b.org/web' },
    },
    400,
    'SPIFFE_ID_FOREIGN_TRUST_DOMAIN',
  )
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: '/v1/trust-domains/a.org/svids/jwt',
      payload: { spiffeId: 'spiffe://b.org/web', audience: 'x' },
    },
    400,
    'SPIFFE_ID_FOREIGN_TRUST_DOMAIN',
  )
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: '/v1/trust-domains/a.org/entries',
      payload: {
        spiffeId: 'spiffe://a.org/x',
        parentId: 'spiffe://b.org/sigil/server',
        selectors: ['unix:uid:1'],
      },
    },
    400,
    'SPIFFE_ID_FOREIGN_TRUST_DOMAIN',
  )
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: '/v1/trust-domains/a.org/join-tokens',
      payload: { spiffeId: 'spiffe://b.org/agent' },
    },
    400,
    'SPIFFE_ID_FOREIGN_TRUST_DOMAIN',
  )
})

t.test('TTLs: zero, negative, above the maximum', async (t) => {
  const { h } = await setup(t)
  const csr = await makeCsr()
  const x509 = '/v1/trust-domains/a.org/svids/x509'
  await refused(
    t,
    h,
    { method: 'POST', url: x509, payload: { csr: csr.pem, spiffeId: 'spiffe://a.org/w', ttl: 0 } },
    400,
    'TTL_INVALID',
  )
  await refused(
    t,
    h,
    { method: 'POST', url: x509, payload: { csr: csr.pem, spiffeId: 'spiffe://a.org/w', ttl: -5 } },
    400,
    'TTL_INVALID',
  )
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: x509,
      payload: { csr: csr.pem, spiffeId: 'spiffe://a.org/w', ttl: 10 * 24 * 3600 },
    },
    400,
    'TTL_TOO_LONG',
    /maximum/,
  )
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: '/v1/trust-domains/a.org/svids/jwt',
      payload: { spiffeId: 'spiffe://a.org/w', audience: 'x', ttl: 999999 },
    },
    400,
    'TTL_TOO_LONG',
  )
  await refused(
    t,
    h,
    { method: 'POST', url: '/v1/trust-domains/a.org/join-tokens', payload: { ttl: 0 } },
    400,
    'TTL_INVALID',
  )
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: '/v1/trust-domains/a.org/entries',
      payload: {
        spiffeId: 'spiffe://a.org/x',
        parentId: 'spiffe://a.org/sigil/server',
        selectors: ['unix:uid:1'],
        x509Ttl: 999999,
      },
    },
    400,
    'TTL_TOO_LONG',
  )
  await refused(
    t,
    h,
    {
      method: 'PATCH',
      url: '/v1/trust-domains/a.org',
      payload: { settings: { x509DefaultTtl: 99999, x509MaxTtl: 100 } },
    },
    400,
    'SETTINGS_INVALID',
  )
})

t.test('authentication and authorization', async (t) => {
  const { h, viewer, adminA } = await setup(t)
  const create = { method: 'POST' as const, url: '/v1/trust-domains/a.org/join-tokens', payload: {} }
  await refused(t, h, { ...create, token: null }, 401, 'UNAUTHENTICATED')
  await refused(t, h, { ...create, token: 'sat_wrong' }, 401, 'TOKEN_INVALID')
  await refused(t, h, { ...create, token: `sat_${'A'.repeat(43)}` }, 401, 'TOKEN_INVALID')
  await refused(
    t,
    h,
    { ...create, headers: { authorization: 'Basic abc' }, token: null },
    401,
    'TOKEN_INVALID',
  )
  const expiring = await h.services.apiTokens.create(undefined, {
    name: 'short',
    grants: [{ trustDomain: '*', role: 'admin' }],
    ttl: 1,
  })
  await new Promise((r) => setTimeout(r, 1100))
  await refused(t, h, { ...create, token: expiring.token }, 401, 'TOKEN_EXPIRED')
  // A viewer may read but not change.
  t.equal((await h.call('GET', '/v1/trust-domains/a.org/entries', undefined, viewer)).statusCode, 200)
  await refused(t, h, { ...create, token: viewer }, 403, 'FORBIDDEN', /viewer-a.*admin/)
  const entry = (await h.call('GET', '/v1/trust-domains/a.org/entries')).json.entries[0]
  await refused(
    t,
    h,
    { method: 'DELETE', url: `/v1/trust-domains/a.org/entries/${entry.id}`, token: viewer },
    403,
    'FORBIDDEN',
  )
  await refused(t, h, { method: 'DELETE', url: '/v1/trust-domains/a.org', token: viewer }, 403, 'FORBIDDEN')
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: '/v1/trust-domains/a.org/svids/jwt',
      payload: { spiffeId: 'spiffe://a.org/w', audience: 'x' },
      token: viewer,
    },
    403,
    'FORBIDDEN',
  )
  // Tenant A's admin on tenant B: refused, whether B exists or not, reads included.
  for (const url of [
    '/v1/trust-domains/b.org',
    '/v1/trust-domains/b.org/entries',
    '/v1/trust-domains/b.org/audit',
    '/v1/trust-domains/b.org/bundle',
    '/v1/trust-domains/nope.org/entries',
  ]) {
    await refused(t, h, { method: 'GET', url, token: adminA }, 403, 'FORBIDDEN')
  }
  await refused(
    t,
    h,
    { method: 'POST', url: '/v1/trust-domains/b.org/join-tokens', payload: {}, token: adminA },
    403,
    'FORBIDDEN',
  )
  await refused(
    t,
    h,
    { method: 'DELETE', url: `/v1/trust-domains/b.org/entries/${entry.id}`, token: adminA },
    403,
    'FORBIDDEN',
  )
  await refused(
    t,
    h,
    { method: 'POST', url: '/v1/trust-domains', payload: { name: 'c.org' }, token: adminA },
    403,
    'FORBIDDEN',
  )
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: '/v1/api-tokens',
      payload: { name: 'x', grants: [{ trustDomain: 'b.org', role: 'viewer' }] },
      token: adminA,
    },
    403,
    'FORBIDDEN',
  )
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: '/v1/api-tokens',
      payload: { name: 'x', grants: [{ trustDomain: '*', role: 'viewer' }] },
      token: adminA,
    },
    403,
    'FORBIDDEN',
  )
  const listed = await h.call('GET', '/v1/trust-domains', undefined, adminA)
  t.same(
    listed.json.trustDomains.map((d: { name: string }) => d.name),
    ['a.org'],
    'a tenant lists only its own trust domains',
  )
  // The entry of A is not reachable through B's path even for an installation admin.
  t.equal(
    (await h.call('GET', `/v1/trust-domains/b.org/entries/${entry.id}`)).json.error.code,
    'ENTRY_NOT_FOUND',
  )
  // Refused cross-tenant attempts are audited in the installation log, not in B's.
  const installation = (await h.call('GET', '/v1/audit')).json.events
  t.ok(
    installation.some(
      (e: { action: string; status: number }) => e.action === 'join-token.create' && e.status === 403,
    ),
  )
  const bLog = (await h.call('GET', '/v1/trust-domains/b.org/audit')).json.events
  t.notOk(
    bLog.some((e: { actor: string }) => e.actor.includes('admin-a')),
    "B never sees A's token names",
  )
})

t.test('hostile names are refused or stored as data, never interpreted', async (t) => {
  const { h } = await setup(t)
  for (const name of [
    '<script>alert(1)</script>',
    'a"b.org',
    "a'b.org",
    '../etc',
    'a\u0000b.org',
    'A.ORG',
    'a b.org',
    '',
  ]) {
    await refused(
      t,
      h,
      { method: 'POST', url: '/v1/trust-domains', payload: { name } },
      400,
      'TRUST_DOMAIN_INVALID',
    )
  }
  await refused(
    t,
    h,
    { method: 'GET', url: `/v1/trust-domains/${encodeURIComponent('../../etc/passwd')}` },
    400,
    'TRUST_DOMAIN_INVALID',
  )
  await refused(
    t,
    h,
    { method: 'GET', url: `/v1/trust-domains/${encodeURIComponent('<img src=x onerror=alert(1)>')}/entries` },
    400,
    'TRUST_DOMAIN_INVALID',
  )
  // Selector values may carry such text; they are stored verbatim and returned as JSON data.
  const hostile = 'k8s:pod-name:<img src=x onerror=alert(1)>"\'../'
  const res = await h.call('POST', '/v1/trust-domains/a.org/entries', {
    spiffeId: 'spiffe://a.org/h',
    parentId: 'spiffe://a.org/sigil/server',
    selectors: [hostile],
  })
  t.equal(res.statusCode, 201, res.body)
  t.same(res.json.selectors, [hostile])
  t.equal((await h.call('GET', `/v1/trust-domains/a.org/entries/${res.json.id}`)).json.selectors[0], hostile)
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: '/v1/trust-domains/a.org/entries',
      payload: {
        spiffeId: 'spiffe://a.org/n',
        parentId: 'spiffe://a.org/sigil/server',
        selectors: ['k8s:pod-name:a\u0000b'],
      },
    },
    400,
    'SELECTOR_INVALID',
  )
  await refused(
    t,
    h,
    {
      method: 'POST',
      url: '/v1/trust-domains/a.org/entries',
      payload: {
        spiffeId: 'spiffe://a.org/n',
        parentId: 'spiffe://a.org/sigil/server',
        selectors: ['bogus:thing'],
      },
    },
    400,
    'SELECTOR_INVALID',
  )
  const msg = await refused(
    t,
    h,
    { method: 'POST', url: '/v1/trust-domains', payload: { name: '<script>alert(1)</script>' } },
    400,
    'TRUST_DOMAIN_INVALID',
  )
  t.match(
    msg.error.message,
    /"<script>alert\(1\)<\/script>"/,
    'the bad input is quoted as data in the message',
  )
})

t.test('rate limits answer 429 with a stable code', async (t) => {
  const h = await buildTestApp(t, { rateLimit: { max: 5, windowSeconds: 60 } })
  const codes: number[] = []
  for (let i = 0; i < 8; i++) codes.push((await h.call('GET', '/v1/trust-domains')).statusCode)
  t.same(codes.slice(0, 5), [200, 200, 200, 200, 200])
  const res = await h.call('GET', '/v1/trust-domains')
  t.equal(res.statusCode, 429)
  t.equal(res.json.error.code, 'RATE_LIMITED')
  t.equal(
    (await h.call('GET', '/healthz', undefined, null)).statusCode,
    200,
    'health checks are not rate limited',
  )
})
