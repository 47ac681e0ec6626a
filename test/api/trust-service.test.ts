import { createPublicKey, X509Certificate } from 'node:crypto'
import { createLocalJWKSet, jwtVerify } from 'jose'
import t from 'tap'
import { buildTestApp } from '../helpers/app.ts'
import { makeCsr } from '../helpers/csr.ts'
import { opensslText, opensslVerify, tempDir } from '../helpers/tools.ts'

t.test('trust domains: create, list, show, update, delete', async (t) => {
  const { call } = await buildTestApp(t)
  const created = await call('POST', '/v1/trust-domains', { name: 'example.org' })
  t.equal(created.statusCode, 201, created.body)
  t.equal(created.json.name, 'example.org')
  t.equal(created.json.settings.keyType, 'ec-p256')
  t.equal(
    (await call('POST', '/v1/trust-domains', { name: 'example.org' })).json.error.code,
    'TRUST_DOMAIN_EXISTS',
  )
  t.same(
    (await call('GET', '/v1/trust-domains')).json.trustDomains.map((d: { name: string }) => d.name),
    ['example.org'],
  )
  t.equal((await call('GET', '/v1/trust-domains/example.org')).json.name, 'example.org')
  const patched = await call('PATCH', '/v1/trust-domains/example.org', {
    settings: { x509MaxTtl: 7200, policyMode: 'explicit' },
  })
  t.equal(patched.statusCode, 200, patched.body)
  t.equal(patched.json.settings.x509MaxTtl, 7200)
  t.equal(patched.json.settings.policyMode, 'explicit')
  const keyChange = await call('PATCH', '/v1/trust-domains/example.org', {
    settings: { keyType: 'rsa-2048' },
  })
  t.equal(keyChange.json.error.code, 'SETTINGS_INVALID')
  t.equal((await call('DELETE', '/v1/trust-domains/example.org')).statusCode, 204)
  t.equal((await call('GET', '/v1/trust-domains/example.org')).json.error.code, 'TRUST_DOMAIN_NOT_FOUND')
  t.equal((await call('DELETE', '/v1/trust-domains/example.org')).json.error.code, 'TRUST_DOMAIN_NOT_FOUND')
})

t.test('registration entries: CRUD, filters, uniqueness, parent rules', async (t) => {
  const { call } = await buildTestApp(t)
  await call('POST', '/v1/trust-domains', { name: 'example.org' })
  const base = '/v1/trust-domains/example.org/entries'
  const body = {
    spiffeId: 'spiffe://example.org/web',
    parentId: 'spiffe://example.org/sigil/agent/join_token/abc',
    selectors: ['unix:uid:1000', 'k8s:ns:prod'],
    dnsNames: ['web.example.org'],
  }
  const created = await call('POST', base, body)
  t.equal(created.statusCode, 201, created.body)
  t.same(created.json.selectors, ['k8s:ns:prod', 'unix:uid:1000'], 'selectors are stored in canonical order')
  t.equal(created.json.x509Ttl, 3600, 'default X.509 TTL comes from the trust domain')
  t.equal(created.json.jwtTtl, 300)
  t.equal((await call('POST', base, body)).json.error.code, 'ENTRY_EXISTS')
  const id = created.json.id
  t.equal((await call('GET', `${base}/${id}`)).json.spiffeId, 'spiffe://example.org/web')
  const updated = await call('PATCH', `${base}/${id}`, { x509Ttl: 600, selectors: ['unix:uid:1001'] })
  t.equal(updated.statusCode, 200, updated.body)
  t.equal(updated.json.x509Ttl, 600)
  t.same(updated.json.selectors, ['unix:uid:1001'])
  t.equal(updated.json.revision, 2)
  const child = await call('POST', base, {
    spiffeId: 'spiffe://example.org/web/child',
    parentId: 'spiffe://example.org/web',
    selectors: ['unix:uid:5'],
  })
  t.equal(child.statusCode, 201, 'an existing entry can be a parent')
  const orphan = await call('POST', base, {
    ...body,
    spiffeId: 'spiffe://example.org/x',
    parentId: 'spiffe://example.org/nope',
  })
  t.equal(orphan.json.error.code, 'ENTRY_PARENT_NOT_FOUND')
  t.equal((await call('GET', `${base}?selector=unix:uid:1001`)).json.entries.length, 1)
  t.equal((await call('GET', `${base}?parentId=spiffe://example.org/web`)).json.entries.length, 1)
  t.equal((await call('GET', base)).json.entries.length, 2)
  t.equal((await call('DELETE', `${base}/${id}`)).statusCode, 204)
  t.equal((await call('GET', `${base}/${id}`)).json.error.code, 'ENTRY_NOT_FOUND')
})

t.test('join tokens: created once, listed without secret, single use', async (t) => {
  const { call, services } = await buildTestApp(t)
  await call('POST', '/v1/trust-domains', { name: 'example.org' })
  const res = await call('POST', '/v1/trust-domains/example.org/join-tokens', { ttl: 600 })
  t.equal(res.statusCode, 201, res.body)
  t.match(res.json.token, /^sjt_/)
  const list = await call('GET', '/v1/trust-domains/example.org/join-tokens')
  t.equal(list.json.joinTokens.length, 1)
  t.notOk(JSON.stringify(list.json).includes(res.json.token), 'the token is never shown again')
  const stored = await services.store.listJoinTokens('example.org')
  t.not(stored[0]!.tokenHash, res.json.token, 'only a hash is stored')
  const td = await services.trustDomains.get('example.org')
  const results = await Promise.allSettled(
    Array.from({ length: 10 }, () => services.joinTokens.consume(td, res.json.token)),
  )
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one use succeeds')
  const again = await services.joinTokens.consume(td, res.json.token).catch((e) => e)
  t.equal(again.code, 'JOIN_TOKEN_NOT_FOUND')
  const revocable = await call('POST', '/v1/trust-domains/example.org/join-tokens', {})
  t.equal(
    (await call('DELETE', `/v1/trust-domains/example.org/join-tokens/${revocable.json.id}`)).statusCode,
    204,
  )
  t.equal(
    (await call('DELETE', `/v1/trust-domains/example.org/join-tokens/${revocable.json.id}`)).json.error.code,
    'JOIN_TOKEN_NOT_FOUND',
  )
})

for (const keyType of ['ec-p256', 'ec-p384', 'rsa-2048'] as const) {
  t.test(
    `X509-SVIDs from a ${keyType} trust domain verify with openssl for client and server purpose`,
    async (t) => {
      const { call } = await buildTestApp(t)
      const dir = tempDir(t)
      await call('POST', '/v1/trust-domains', { name: 'example.org', settings: { keyType } })
      const csr = await makeCsr()
      const res = await call('POST', '/v1/trust-domains/example.org/svids/x509', {
        csr: csr.pem,
        spiffeId: 'spiffe://example.org/ns/prod/sa/web',
        ttl: 600,
        dnsNames: ['web.example.org'],
      })
      t.equal(res.statusCode, 200, res.body)
      t.equal(res.json.certChain.length, 2, 'chain = leaf + intermediate')
      const bundle = (await call('GET', '/v1/trust-domains/example.org/bundle?format=pem')).body
      for (const purpose of ['sslclient', 'sslserver'] as const) {
        const v = opensslVerify(dir, res.json.certChainPem, bundle, purpose)
        t.ok(v.ok, `openssl verify -purpose ${purpose}: ${v.output}`)
      }
      const leaf = new X509Certificate(res.json.certChain[0])
      t.equal(leaf.subjectAltName, 'URI:spiffe://example.org/ns/prod/sa/web, DNS:web.example.org')
      t.equal(leaf.ca, false)
      t.ok(leaf.checkIssued(new X509Certificate(res.json.certChain[1])))
      const lifetime = Date.parse(leaf.validTo) - Date.now()
      t.ok(lifetime <= 600_000 && lifetime > 500_000, `notAfter follows the requested TTL (${lifetime}ms)`)
      t.ok(leaf.serialNumber.replace(/^0+/, '').length >= 20, '128-bit random serial')
      const text = opensslText(res.json.certChain[0])
      t.match(text, /X509v3 Key Usage: critical\s+Digital Signature/)
      t.notMatch(text, /Certificate Sign|CRL Sign/)
      t.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/)
      t.match(text, /CA:FALSE/)
      const other = await buildTestApp(t)
      await other.call('POST', '/v1/trust-domains', { name: 'example.org', settings: { keyType } })
      const foreignBundle = (await other.call('GET', '/v1/trust-domains/example.org/bundle?format=pem')).body
      t.notOk(
        opensslVerify(dir, res.json.certChainPem, foreignBundle, 'sslclient').ok,
        'another CA does not verify it',
      )
    },
  )
}

t.test('batch issuance: each item succeeds or fails on its own', async (t) => {
  const { call } = await buildTestApp(t)
  await call('POST', '/v1/trust-domains', { name: 'example.org' })
  const good = await makeCsr()
  const res = await call('POST', '/v1/trust-domains/example.org/svids/x509/batch', {
    requests: [
      { csr: good.pem, spiffeId: 'spiffe://example.org/a' },
      { csr: 'bm90IGEgY3Ny', spiffeId: 'spiffe://example.org/b' },
      { csr: good.pem, spiffeId: 'spiffe://other.org/c' },
      { csr: good.pem, spiffeId: 'spiffe://example.org/d', ttl: 0 },
    ],
  })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.json.results[0].spiffeId, 'spiffe://example.org/a')
  t.equal(res.json.results[1].error.code, 'CSR_MALFORMED')
  t.equal(res.json.results[2].error.code, 'SPIFFE_ID_FOREIGN_TRUST_DOMAIN')
  t.equal(res.json.results[3].error.code, 'TTL_INVALID')
})

t.test('JWT-SVIDs verify against the SPIFFE bundle; the bundle follows the SPIFFE format', async (t) => {
  const { call } = await buildTestApp(t)
  await call('POST', '/v1/trust-domains', { name: 'example.org' })
  const fresh = (await call('GET', '/v1/trust-domains/example.org/bundle')).json
  t.ok(
    fresh.keys.some((k: { use: string }) => k.use === 'jwt-svid'),
    "a new trust domain's bundle already holds a JWT key",
  )
  t.equal(fresh.spiffe_sequence, 2, 'created at 1, incremented when the JWT key was published')
  const res = await call('POST', '/v1/trust-domains/example.org/svids/jwt', {
    spiffeId: 'spiffe://example.org/web',
    audience: ['db', 'cache'],
  })
  t.equal(res.statusCode, 200, res.body)
  const bundle = (await call('GET', '/v1/trust-domains/example.org/bundle')).json
  t.equal(bundle.spiffe_sequence, fresh.spiffe_sequence, 'issuing changes nothing in the bundle')
  t.ok(bundle.spiffe_refresh_hint > 0)
  const x509Keys = bundle.keys.filter((k: { use: string }) => k.use === 'x509-svid')
  const jwtKeys = bundle.keys.filter((k: { use: string }) => k.use === 'jwt-svid')
  t.equal(x509Keys.length, 1)
  t.equal(x509Keys[0].x5c.length, 1, 'exactly one x5c certificate')
  t.notOk('kid' in x509Keys[0], 'x509-svid keys have no kid')
  t.ok(jwtKeys.every((k: { kid?: string }) => typeof k.kid === 'string' && k.kid.length > 0))
  const cert = new X509Certificate(Buffer.from(x509Keys[0].x5c[0], 'base64'))
  const fromJwk = createPublicKey({ key: x509Keys[0], format: 'jwk' }).export({ format: 'der', type: 'spki' })
  t.same(fromJwk, cert.publicKey.export({ format: 'der', type: 'spki' }), "the JWK is the certificate's key")
  const jwks = createLocalJWKSet({ keys: jwtKeys.map(({ use, ...k }: { use: string }) => k) })
  const { payload, protectedHeader } = await jwtVerify(res.json.token, jwks, { audience: 'db' })
  t.equal(payload.sub, 'spiffe://example.org/web')
  t.same(payload.aud, ['db', 'cache'])
  t.equal(protectedHeader.alg, 'ES256')
  t.ok(protectedHeader.kid)
  t.ok(payload.exp! - payload.iat! <= 300, 'default JWT TTL is 5 minutes')
  const pub = await call('GET', '/v1/federation/example.org/bundle', undefined, null)
  t.equal(pub.statusCode, 200, 'the federation bundle endpoint needs no token')
  t.same(pub.json.keys.length, bundle.keys.length)
})

t.test('CA rotation keeps SVIDs issued before it valid and the roots stable', async (t) => {
  const { call } = await buildTestApp(t)
  const dir = tempDir(t)
  await call('POST', '/v1/trust-domains', { name: 'example.org' })
  const csr = await makeCsr()
  const before = await call('POST', '/v1/trust-domains/example.org/svids/x509', {
    csr: csr.pem,
    spiffeId: 'spiffe://example.org/a',
  })
  const jwtBefore = await call('POST', '/v1/trust-domains/example.org/svids/jwt', {
    spiffeId: 'spiffe://example.org/a',
    audience: 'x',
  })
  const rootsBefore = (await call('GET', '/v1/trust-domains/example.org/bundle?format=pem')).body
  const status0 = (await call('GET', '/v1/trust-domains/example.org/authority')).json
  const rotated = await call('POST', '/v1/trust-domains/example.org/authority/rotate')
  t.equal(rotated.statusCode, 200, rotated.body)
  t.same(
    rotated.json.intermediates.map((i: { state: string }) => i.state).sort(),
    ['active', 'retired'],
    'the old intermediate is retired, the new one active',
  )
  t.not(
    rotated.json.intermediates.find((i: { state: string }) => i.state === 'active').id,
    status0.intermediates[0].id,
  )
  const after = await call('POST', '/v1/trust-domains/example.org/svids/x509', {
    csr: csr.pem,
    spiffeId: 'spiffe://example.org/a',
  })
  t.not(after.json.certChain[1], before.json.certChain[1], 'a new intermediate signs after rotation')
  const rootsAfter = (await call('GET', '/v1/trust-domains/example.org/bundle?format=pem')).body
  t.equal(rootsAfter, rootsBefore, 'the roots did not change')
  for (const svid of [before, after]) {
    const v = opensslVerify(dir, svid.json.certChainPem, rootsAfter, 'sslclient')
    t.ok(v.ok, v.output)
  }
  const bundle = (await call('GET', '/v1/trust-domains/example.org/bundle')).json
  const jwks = createLocalJWKSet({
    keys: bundle.keys
      .filter((k: { use: string }) => k.use === 'jwt-svid')
      .map(({ use, ...k }: { use: string }) => k),
  })
  await t.resolves(
    jwtVerify(jwtBefore.json.token, jwks, { audience: 'x' }),
    'a JWT-SVID from before rotation still verifies',
  )
})

t.test('audit: every mutating call, with result; per trust domain', async (t) => {
  const { call } = await buildTestApp(t)
  await call('POST', '/v1/trust-domains', { name: 'a.org' })
  await call('POST', '/v1/trust-domains', { name: 'b.org' })
  await call('POST', '/v1/trust-domains/a.org/entries', {
    spiffeId: 'spiffe://a.org/x',
    parentId: 'spiffe://a.org/sigil/server',
    selectors: ['unix:uid:1'],
  })
  await call('POST', '/v1/trust-domains/a.org/entries', {
    spiffeId: 'bad',
    parentId: 'spiffe://a.org/sigil/server',
    selectors: ['unix:uid:1'],
  })
  await call('POST', '/v1/trust-domains/b.org/join-tokens', {})
  const events = (await call('GET', '/v1/trust-domains/a.org/audit')).json.events
  t.same(
    events.map((e: { action: string; result: string; status: number }) => [e.action, e.result, e.status]),
    [
      ['entry.create', 'error', 400],
      ['entry.create', 'ok', 201],
      ['trust-domain.create', 'ok', 201],
    ],
  )
  t.equal(events[0].code, 'SPIFFE_ID_INVALID')
  t.match(events[1].actor, /test-admin/)
  const b = (await call('GET', '/v1/trust-domains/b.org/audit')).json.events
  t.same(
    b.map((e: { action: string }) => e.action),
    ['join-token.create', 'trust-domain.create'],
  )
})

t.test('OpenAPI document describes every route', async (t) => {
  const { call, app } = await buildTestApp(t)
  const res = await call('GET', '/v1/openapi.json', undefined, null)
  t.equal(res.statusCode, 200)
  t.equal(res.json.openapi, '3.0.3')
  const paths = Object.keys(res.json.paths)
  for (const p of [
    '/v1/trust-domains',
    '/v1/trust-domains/{trustDomain}/entries',
    '/v1/trust-domains/{trustDomain}/svids/x509',
    '/v1/trust-domains/{trustDomain}/join-tokens',
    '/v1/trust-domains/{trustDomain}/bundle',
    '/v1/trust-domains/{trustDomain}/audit',
  ]) {
    t.ok(paths.includes(p), `${p} is documented`)
  }
  t.equal(
    res.json.paths['/v1/trust-domains'].post.requestBody.content['application/json'].schema
      .additionalProperties,
    false,
  )
  void app
})

t.test('health, readiness, metrics and the console page', async (t) => {
  const { call } = await buildTestApp(t)
  t.equal((await call('GET', '/healthz', undefined, null)).json.status, 'ok')
  t.equal((await call('GET', '/readyz', undefined, null)).json.status, 'ready')
  await call('POST', '/v1/trust-domains', { name: 'example.org' })
  const metrics = await call('GET', '/metrics', undefined, null)
  t.match(
    metrics.body,
    /sigil_http_requests_total\{route="\/v1\/trust-domains",method="POST",status="201"\} 1/,
  )
  const page = await call('GET', '/', undefined, null)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, /Sigil/)
})
