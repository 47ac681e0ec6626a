// Federation between trust domains, over real HTTPS sockets: tenants of one trust service fetch each
// other's bundles from the public bundle endpoint (https_web), an endpoint presenting an X509-SVID is
// authenticated with the foreign bundle held (https_spiffe, across a CA rotation of the foreign side),
// every kind of bad bundle is refused with lastError and a log line while the old bundle keeps working,
// policies may name federated identities only, and an agent's workloads receive exactly the federated
// bundles their entries name, through the Workload API.

import { X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import t, { type Test } from 'tap'
import { Agent } from '../../agents/daemon/agent.ts'
import { UnixAttestor } from '../../agents/workload/unix.ts'
import { WorkloadApiClient } from '../../agents/workload-api/client.ts'
import { startWorkloadApi } from '../../agents/workload-api/server.ts'
import { x509 } from '../../services/authority/x509-lib.ts'
import { DAY, HOUR, makeCert } from '../attestation/helpers/pki.ts'
import { buildTestApp } from '../helpers/app.ts'
import { makeCsr } from '../helpers/csr.ts'
import { tempDir } from '../helpers/tools.ts'
import { until } from '../helpers/wait.ts'

const logs: string[] = []
const log = {
  info: (obj: object, msg: string) => logs.push(`INFO ${msg} ${JSON.stringify(obj)}`),
  warn: (obj: object, msg: string) => logs.push(`WARN ${msg} ${JSON.stringify(obj)}`),
}
const quiet = { info() {}, warn() {}, error() {} }

const h = await buildTestApp(t, { https: true, log, federation: { refreshHint: 5 } })
const { call } = h
const url = h.url!
const caPem = h.caPem!
for (const name of ['a.test', 'b.test', 'c.test', 'd.test', 'e.test', 'f.test', 'g.test']) {
  const res = await call('POST', '/v1/trust-domains', { name })
  if (res.statusCode !== 201) throw new Error(res.body)
}

const endpoint = (td: string) => `${url}/v1/federation/${td}/bundle`
const fed = (td: string) => `/v1/trust-domains/${td}/federations`

async function servedBundle(
  td: string,
): Promise<{ keys: any[]; spiffe_sequence: number; spiffe_refresh_hint: number }> {
  return (await call('GET', `/v1/federation/${td}/bundle`, undefined, null)).json
}

function rootsOf(bundle: { keys: any[] }): string[] {
  return bundle.keys.filter((k) => k.use === 'x509-svid').map((k) => k.x5c[0])
}

function logged(pattern: RegExp): boolean {
  return logs.some((l) => pattern.test(l))
}

/** An HTTPS server whose answer and certificate the test changes as it goes. */
async function fakeEndpoint(
  t: Test,
  cert: { certPem: string; keyPem: string },
): Promise<{
  url: string
  answer: (res: import('node:http').ServerResponse) => void
  setAnswer(fn: (res: import('node:http').ServerResponse) => void): void
  setCert(c: { certPem: string; keyPem: string }): void
}> {
  const state = {
    answer: (res: import('node:http').ServerResponse) => {
      res.writeHead(500)
      res.end()
    },
  }
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (_req, res) =>
    state.answer(res),
  )
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/bundle`,
    get answer() {
      return state.answer
    },
    setAnswer(fn) {
      state.answer = fn
    },
    setCert(c) {
      server.setSecureContext({ cert: c.certPem, key: c.keyPem })
    },
  }
}

const json = (body: unknown) => (res: import('node:http').ServerResponse) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(typeof body === 'string' ? body : JSON.stringify(body))
}

/** An X509-SVID minted by `td` for `spiffeId`, as PEM chain and key (for a TLS server). */
async function mintSvid(td: string, spiffeId: string, ttl?: number) {
  const csr = await makeCsr()
  const res = await call('POST', `/v1/trust-domains/${td}/svids/x509`, {
    csr: csr.pem,
    spiffeId,
    ...(ttl ? { ttl } : {}),
  })
  if (res.statusCode !== 200) throw new Error(res.body)
  return { certPem: res.json.certChainPem as string, keyPem: csr.keyPem }
}

t.test('https_web both ways between two tenants, through the public bundle endpoint', async (t) => {
  const b = await servedBundle('b.test')
  t.equal(b.spiffe_refresh_hint, 5, 'the served hint is the configured one')
  const ab = await call('POST', fed('a.test'), {
    foreignTrustDomain: 'b.test',
    bundleEndpointUrl: endpoint('b.test'),
    caBundlePem: caPem,
  })
  t.equal(ab.statusCode, 201, ab.body)
  t.match(ab.json, {
    trustDomain: 'a.test',
    foreignTrustDomain: 'b.test',
    profile: 'https_web',
    endpointSpiffeId: null,
    sequence: b.spiffe_sequence,
    roots: 1,
    refreshHintSeconds: 5,
    lastError: null,
  })
  t.ok(ab.json.jwtKeys >= 1, 'the JWT keys came too')
  t.type(ab.json.lastRefreshAt, 'string')

  const ba = await call('POST', fed('b.test'), {
    foreignTrustDomain: 'a.test',
    bundleEndpointUrl: endpoint('a.test'),
    caBundlePem: caPem,
  })
  t.equal(ba.statusCode, 201, ba.body)
  t.equal(ba.json.lastError, null, 'and the other way')

  const shown = await call('GET', `${fed('a.test')}/b.test`)
  t.equal(shown.statusCode, 200)
  t.strictSame(rootsOf(shown.json.bundle), rootsOf(b), "a.test holds b.test's roots")
  t.strictSame(
    shown.json.bundle.keys.filter((k: any) => k.use === 'jwt-svid').map((k: any) => k.kid),
    b.keys.filter((k) => k.use === 'jwt-svid').map((k) => k.kid),
    'and its JWT keys',
  )
  const list = await call('GET', fed('a.test'))
  t.strictSame(
    list.json.federations.map((f: any) => f.foreignTrustDomain),
    ['b.test'],
  )
  t.notOk('bundle' in list.json.federations[0], 'the list leaves bundles out')

  const refreshed = await call('POST', `${fed('a.test')}/b.test/refresh`)
  t.equal(refreshed.statusCode, 200, refreshed.body)
  t.equal(refreshed.json.outcome, 'unchanged', 'nothing changed meanwhile')

  // Without the server CA, the web PKI does not vouch for a private installation's endpoint.
  const untrusted = await call('POST', fed('c.test'), {
    foreignTrustDomain: 'b.test',
    bundleEndpointUrl: endpoint('b.test'),
  })
  t.equal(untrusted.statusCode, 201, 'created anyway: it is retried at the refresh hint')
  t.match(untrusted.json.lastError, /cannot connect to the bundle endpoint .*certificate/i)
  t.equal(untrusted.json.roots, 0)
  t.ok(logged(/WARN federated bundle of b.test refused.*"trustDomain":"c.test"/), 'logged')
  t.equal((await call('DELETE', `${fed('c.test')}/b.test`)).statusCode, 204)

  const audit = await call('GET', '/v1/trust-domains/a.test/audit')
  t.ok(
    audit.json.events.some((e: any) => e.action === 'federation.create' && e.result === 'ok'),
    'creation is audited',
  )
  t.ok(
    audit.json.events.some((e: any) => e.action === 'federation.refresh'),
    'so is a refresh',
  )
})

t.test('the routes are in the OpenAPI document', async (t) => {
  const doc = (await call('GET', '/v1/openapi.json', undefined, null)).json
  const paths = Object.keys(doc.paths)
  for (const p of [
    '/v1/trust-domains/{trustDomain}/federations',
    '/v1/trust-domains/{trustDomain}/federations/{foreign}',
    '/v1/trust-domains/{trustDomain}/federations/{foreign}/refresh',
  ]) {
    t.ok(paths.includes(p), p)
  }
  const create = doc.paths['/v1/trust-domains/{trustDomain}/federations'].post
  t.strictSame(create.tags, ['federation'])
  t.match(JSON.stringify(create.requestBody), /https_spiffe/)
})

t.test('input is checked; roles and tenants are enforced', async (t) => {
  const post = (body: unknown, token?: string) => call('POST', fed('d.test'), body, token)
  const base = { foreignTrustDomain: 'b.test', bundleEndpointUrl: endpoint('b.test') }
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['http', { ...base, bundleEndpointUrl: 'http://127.0.0.1/x' }, 'FEDERATION_INVALID', /https:\/\//],
    ['not a URL', { ...base, bundleEndpointUrl: 'bundle' }, 'FEDERATION_INVALID', /not a URL/],
    ['itself', { ...base, foreignTrustDomain: 'd.test' }, 'FEDERATION_INVALID', /itself/],
    ['bad name', { ...base, foreignTrustDomain: 'B.test' }, 'TRUST_DOMAIN_INVALID', /lowercase/],
    ['profile', { ...base, profile: 'https' }, 'VALIDATION_FAILED', /profile/],
    ['unknown field', { ...base, refresh: 1 }, 'UNKNOWN_FIELD', /refresh/],
    ['bad PEM', { ...base, caBundlePem: 'nope' }, 'FEDERATION_INVALID', /no PEM certificate/],
    [
      'spiffe without ID',
      { ...base, profile: 'https_spiffe', trustBundle: caPem },
      'FEDERATION_INVALID',
      /needs endpointSpiffeId/,
    ],
    [
      'spiffe ID elsewhere',
      { ...base, profile: 'https_spiffe', endpointSpiffeId: 'spiffe://c.test/x', trustBundle: caPem },
      'FEDERATION_INVALID',
      /not in the foreign trust domain "b.test"/,
    ],
    [
      'spiffe without bundle',
      { ...base, profile: 'https_spiffe', endpointSpiffeId: 'spiffe://b.test/x' },
      'FEDERATION_INVALID',
      /needs trustBundle/,
    ],
    [
      'web with an endpoint ID',
      { ...base, endpointSpiffeId: 'spiffe://b.test/x' },
      'FEDERATION_INVALID',
      /https_spiffe profile/,
    ],
  ]
  for (const [what, body, code, message] of cases) {
    const res = await post(body)
    t.equal(res.statusCode, 400, what)
    t.equal(res.json?.error?.code, code, `${what}: ${res.body}`)
    t.match(res.json?.error?.message, message, what)
  }
  t.strictSame((await call('GET', fed('d.test'))).json.federations, [], 'nothing was stored')

  const ok = await post({ ...base, caBundlePem: caPem })
  t.equal(ok.statusCode, 201)
  const again = await post({ ...base, caBundlePem: caPem })
  t.equal(again.statusCode, 409)
  t.equal(again.json.error.code, 'FEDERATION_EXISTS')
  const missing = await call('GET', `${fed('d.test')}/nobody.test`)
  t.equal(missing.statusCode, 404)
  t.equal(missing.json.error.code, 'FEDERATION_NOT_FOUND')
  t.match(missing.json.error.message, /sigil federation list/)
  t.equal(
    (await call('POST', `${fed('d.test')}/nobody.test/refresh`)).json.error.code,
    'FEDERATION_NOT_FOUND',
  )

  const viewer = await call('POST', '/v1/api-tokens', {
    name: 'd-viewer',
    grants: [{ trustDomain: 'd.test', role: 'viewer' }],
  })
  const otherAdmin = await call('POST', '/v1/api-tokens', {
    name: 'e-admin',
    grants: [{ trustDomain: 'e.test', role: 'admin' }],
  })
  t.equal((await call('GET', fed('d.test'), undefined, viewer.json.token)).statusCode, 200, 'viewers read')
  t.equal((await call('GET', `${fed('d.test')}/b.test`, undefined, viewer.json.token)).statusCode, 200)
  const refused = await post({ ...base, foreignTrustDomain: 'c.test' }, viewer.json.token)
  t.equal(refused.statusCode, 403, 'viewers do not create')
  t.equal(
    (await call('DELETE', `${fed('d.test')}/b.test`, undefined, viewer.json.token)).statusCode,
    403,
    'nor delete',
  )
  t.equal(
    (await call('GET', fed('d.test'), undefined, otherAdmin.json.token)).statusCode,
    403,
    "another tenant's admin sees nothing",
  )
  t.equal((await call('DELETE', `${fed('d.test')}/b.test`)).statusCode, 204)
  t.equal((await call('DELETE', `${fed('d.test')}/b.test`)).json.error.code, 'FEDERATION_NOT_FOUND')
})

t.test('bad bundles are refused with lastError and a log line; the old bundle keeps working', async (t) => {
  const ca = await makeCert({ subject: 'CN=bad endpoint CA', ca: true })
  const web = await makeCert({ subject: 'CN=127.0.0.1', issuer: ca, ips: ['127.0.0.1'] })
  const fake = await fakeEndpoint(t, { certPem: web.pem, keyPem: web.keyPem })
  const good = await servedBundle('b.test')
  const seq = good.spiffe_sequence
  fake.setAnswer(json({ ...good, spiffe_sequence: seq + 10 }))
  const created = await call('POST', fed('e.test'), {
    foreignTrustDomain: 'b.test',
    bundleEndpointUrl: fake.url,
    caBundlePem: ca.pem,
  })
  t.equal(created.statusCode, 201, created.body)
  t.match(created.json, { sequence: seq + 10, roots: 1, lastError: null })

  const leaf = await makeCert({ subject: 'CN=not a CA' })
  const expiredRoot = await makeCert({
    subject: 'CN=old root',
    ca: true,
    uris: ['spiffe://b.test'],
    notBefore: Date.now() - 2 * DAY,
    notAfter: Date.now() - DAY,
  })
  const c = await servedBundle('c.test')
  const big = (res: import('node:http').ServerResponse) => {
    // Chunked, no length: the limit holds while reading.
    res.writeHead(200, { 'content-type': 'application/json' })
    const chunk = Buffer.alloc(64 * 1024, 0x20)
    let sent = 0
    const write = () => {
      while (sent < 10 * 1024 * 1024) {
        sent += chunk.length
        if (!res.write(chunk)) {
          res.once('drain', write)
          return
        }
      }
      res.end()
    }
    res.on('error', () => {})
    write()
  }
  const cases: Array<[string, (res: import('node:http').ServerResponse) => void, RegExp]> = [
    [
      'garbage JSON',
      json('{"keys": [{"use": "x509-svid", '),
      /the bundle is not JSON \(it starts "\{\\"keys\\"/,
    ],
    [
      'an HTML page',
      json('<!DOCTYPE html>\n<html><body>Welcome to nginx!</body></html>'),
      /not JSON \(it starts "<!DOCTYPE html> <html>/,
    ],
    ['a 10 MB body', big, /more than 1048576 bytes/],
    [
      'a 10 MB body announced',
      (res) => {
        res.writeHead(200, { 'content-length': String(10 * 1024 * 1024) })
        res.on('error', () => {})
        res.end()
      },
      /sent 10485760 bytes; the limit is 1048576/,
    ],
    [
      'keys that are not CAs',
      json({ keys: [{ use: 'x509-svid', x5c: [leaf.der.toString('base64')] }], spiffe_sequence: seq + 20 }),
      /keys\[0\]: .*is not a CA certificate/,
    ],
    [
      'only an expired root',
      json({
        keys: [{ use: 'x509-svid', x5c: [expiredRoot.der.toString('base64')] }],
        spiffe_sequence: seq + 20,
      }),
      /every root of the bundle has expired/,
    ],
    [
      'the wrong trust domain',
      json({ ...c, spiffe_sequence: seq + 20 }),
      /CA of trust domain "c.test", not "b.test"/,
    ],
    [
      'a lower sequence',
      json({ ...good, spiffe_sequence: seq + 9 }),
      /spiffe_sequence \d+, older than the \d+ already held/,
    ],
    ['an empty bundle', json({ keys: [], spiffe_sequence: seq + 20 }), /the bundle is empty/],
    [
      'a private key',
      json({ keys: [{ use: 'jwt-svid', kid: 'k', kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'd' }] }),
      /private key material/,
    ],
    [
      'an error page',
      (res) => {
        res.writeHead(404)
        res.end('not here')
      },
      /answered HTTP 404/,
    ],
    [
      'a redirect',
      (res) => {
        res.writeHead(302, { location: 'https://elsewhere.example/bundle' })
        res.end()
      },
      /HTTP 302 \(redirect to "https:\/\/elsewhere.example\/bundle"; not followed\)/,
    ],
  ]
  for (const [what, answer, message] of cases) {
    fake.setAnswer(answer)
    const before = logs.length
    const res = await call('POST', `${fed('e.test')}/b.test/refresh`)
    t.equal(res.statusCode, 502, `${what}: refused`)
    t.equal(res.json.error.code, 'FEDERATION_REFRESH_FAILED', what)
    t.match(res.json.error.message, message, `${what}: the reason`)
    t.match(res.json.error.message, /the previous bundle stays in use/)
    const now = (await call('GET', `${fed('e.test')}/b.test`)).json
    t.match(now, { sequence: seq + 10, roots: 1 }, `${what}: the good bundle stays`)
    t.match(now.lastError, message, `${what}: lastError says why`)
    t.type(now.lastErrorAt, 'string')
    t.strictSame(rootsOf(now.bundle), rootsOf(good), `${what}: the same roots`)
    t.ok(
      logs
        .slice(before)
        .some((l) => l.startsWith('WARN federated bundle of b.test refused; keeping the previous one')),
      `${what}: a log line`,
    )
  }

  // An expired endpoint certificate (https_web): node:tls refuses it.
  const expired = await makeCert({
    subject: 'CN=127.0.0.1',
    issuer: ca,
    ips: ['127.0.0.1'],
    notBefore: Date.now() - 2 * DAY,
    notAfter: Date.now() - HOUR,
  })
  fake.setAnswer(json({ ...good, spiffe_sequence: seq + 30 }))
  fake.setCert({ certPem: expired.pem, keyPem: expired.keyPem })
  const res = await call('POST', `${fed('e.test')}/b.test/refresh`)
  t.equal(res.statusCode, 502)
  t.match(res.json.error.message, /certificate has expired/)
  t.equal((await call('GET', `${fed('e.test')}/b.test`)).json.sequence, seq + 10)

  fake.setCert({ certPem: web.pem, keyPem: web.keyPem })
  const fixed = await call('POST', `${fed('e.test')}/b.test/refresh`)
  t.equal(fixed.statusCode, 200, 'a good bundle again is taken')
  t.match(fixed.json, { outcome: 'stored', sequence: seq + 30, lastError: null, lastErrorAt: null })
  t.ok(logged(/INFO federated bundle of b.test updated/))
})

t.test(
  'https_spiffe: the endpoint proves its SPIFFE ID with the foreign bundle, across a rotation',
  async (t) => {
    const ENDPOINT = 'spiffe://f.test/bundle-endpoint'
    const svid = await mintSvid('f.test', ENDPOINT)
    const fake = await fakeEndpoint(t, svid)
    const current = async () => json(await servedBundle('f.test'))
    fake.setAnswer(await current())
    const pem = (await call('GET', '/v1/trust-domains/f.test/bundle?format=pem')).body
    const create = (td: string, body: Record<string, unknown>) =>
      call('POST', fed(td), {
        foreignTrustDomain: 'f.test',
        bundleEndpointUrl: fake.url,
        profile: 'https_spiffe',
        endpointSpiffeId: ENDPOINT,
        trustBundle: pem,
        ...body,
      })

    const ok = await create('g.test', {})
    t.equal(ok.statusCode, 201, ok.body)
    t.match(ok.json, {
      profile: 'https_spiffe',
      endpointSpiffeId: ENDPOINT,
      lastError: null,
      roots: 1,
      sequence: (await servedBundle('f.test')).spiffe_sequence,
    })

    const wrongId = await create('a.test', { endpointSpiffeId: 'spiffe://f.test/someone-else' })
    t.equal(wrongId.statusCode, 201)
    t.match(
      wrongId.json.lastError,
      /not trusted: its certificate .* names "spiffe:\/\/f.test\/bundle-endpoint", not the expected "spiffe:\/\/f.test\/someone-else"/,
    )
    t.equal(wrongId.json.sequence, 0, 'the bootstrap bundle (PEM: sequence 0) stays')
    t.equal(wrongId.json.roots, 1)
    t.equal((await call('DELETE', `${fed('a.test')}/f.test`)).statusCode, 204)

    const cPem = (await call('GET', '/v1/trust-domains/c.test/bundle?format=pem')).body
    const wrongBootstrap = await create('a.test', { trustBundle: cPem })
    t.equal(wrongBootstrap.statusCode, 400, "another trust domain's roots are no bootstrap bundle")
    t.match(wrongBootstrap.json.error.message, /trustBundle: .*trust domain "c.test", not "f.test"/)

    // An SVID of another trust domain, even one with the expected ID's name, does not chain to f.test.
    fake.setCert(await mintSvid('c.test', 'spiffe://c.test/bundle-endpoint'))
    let res = await call('POST', `${fed('g.test')}/f.test/refresh`)
    t.equal(res.statusCode, 502)
    t.match(res.json.error.message, /not trusted: certificate .* does not chain to a trusted CA/)

    // An expired SVID.
    fake.setCert(await mintSvid('f.test', ENDPOINT, 1))
    await new Promise((r) => setTimeout(r, 2_100))
    res = await call('POST', `${fed('g.test')}/f.test/refresh`)
    t.equal(res.statusCode, 502)
    t.match(res.json.error.message, /not trusted: certificate .* expired at/)

    // The foreign side rotates its root CA. Its endpoint still presents the old SVID: the new bundle (old
    // and new root) is fetched through the old root...
    fake.setCert(svid)
    const before = await servedBundle('f.test')
    t.equal((await call('POST', '/v1/trust-domains/f.test/authority/rotate?root=true')).statusCode, 200)
    const rotated = await servedBundle('f.test')
    t.equal(rootsOf(rotated).length, 2, 'f.test publishes old and new root')
    t.ok(rotated.spiffe_sequence > before.spiffe_sequence)
    fake.setAnswer(json(rotated))
    res = await call('POST', `${fed('g.test')}/f.test/refresh`)
    t.equal(res.statusCode, 200, res.body)
    t.match(res.json, { outcome: 'stored', roots: 2, sequence: rotated.spiffe_sequence })
    // ...and then the endpoint's new SVID, under the new root, is trusted through the bundle just fetched.
    const renewed = await mintSvid('f.test', ENDPOINT)
    const chain = renewed.certPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!
    const issuer = new X509Certificate(chain[1]!)
    const newRoot = new X509Certificate(Buffer.from(rootsOf(rotated)[1]!, 'base64'))
    t.ok(issuer.verify(newRoot.publicKey), 'the new SVID chains to the new root')
    fake.setCert(renewed)
    res = await call('POST', `${fed('g.test')}/f.test/refresh`)
    t.equal(res.statusCode, 200, res.body)
    t.equal(res.json.lastError, null)
  },
)

t.test('a policy may name foreign SPIFFE IDs only of trust domains it federates with', async (t) => {
  const text = [
    'mode: explicit',
    'rules:',
    '  - name: partner-to-api',
    '    from: { spiffeId: "spiffe://b.test/partner/web" }',
    '    to: { spiffeId: "spiffe://g.test/api", ports: [443] }',
    '',
  ].join('\n')
  const before = await call('PUT', '/v1/trust-domains/g.test/policy', { text })
  t.equal(before.statusCode, 400)
  t.equal(before.json.error.code, 'POLICY_INVALID')
  t.match(before.json.error.message, /trust domain "b.test", not "g.test" nor one it federates with/)

  const f = await call('POST', fed('g.test'), {
    foreignTrustDomain: 'b.test',
    bundleEndpointUrl: endpoint('b.test'),
    caBundlePem: caPem,
  })
  t.equal(f.statusCode, 201)
  const after = await call('PUT', '/v1/trust-domains/g.test/policy', { text })
  t.equal(after.statusCode, 200, after.body)
  t.equal(after.json.rules[0].from.spiffeId, 'spiffe://b.test/partner/web')
  const json = await call('PUT', '/v1/trust-domains/g.test/policy', {
    policy: {
      rules: [
        { name: 'c', from: { spiffeId: 'spiffe://c.test/x' }, to: { spiffeId: 'spiffe://g.test/api' } },
      ],
    },
  })
  t.equal(json.statusCode, 400, 'c.test is still foreign')
  t.match(json.json.error.message, /"c.test"/)

  t.equal((await call('DELETE', `${fed('g.test')}/b.test`)).statusCode, 204)
  const stored = await call('GET', '/v1/trust-domains/g.test/policy')
  t.equal(stored.statusCode, 200, 'the stored policy still reads after the federation is gone')
  t.equal(stored.json.rules.length, 1)
})

t.test(
  "an agent's workloads get the federated bundles their entries name, via the Workload API",
  async (t) => {
    const dir = tempDir(t, 'sigil-fed-agent-')
    // a.test federates with b.test (above) and c.test; the entry names b.test only.
    const ac = await call('POST', fed('a.test'), {
      foreignTrustDomain: 'c.test',
      bundleEndpointUrl: endpoint('c.test'),
      caBundlePem: caPem,
    })
    t.equal(ac.json.lastError, null, ac.body)
    const agentId = 'spiffe://a.test/sigil/agent/join_token/fed-node'
    const uid = process.getuid!()
    const entry = await call('POST', '/v1/trust-domains/a.test/entries', {
      spiffeId: 'spiffe://a.test/web',
      parentId: agentId,
      selectors: [`unix:uid:${uid}`],
      federatesWith: ['b.test'],
    })
    t.equal(entry.statusCode, 201, entry.body)
    const { token } = (await call('POST', '/v1/trust-domains/a.test/join-tokens', { spiffeId: agentId })).json
    const agent = new Agent({
      server: new URL(url),
      trustDomain: 'a.test',
      trustBundlePem: caPem,
      attestor: { name: 'join_token', evidence: async () => ({ token }) },
      log: quiet,
    })
    t.teardown(() => agent.close())
    await agent.start()
    await agent.whenSynced()
    const bRoots = rootsOf(await servedBundle('b.test'))
    const bundles = await until('the federated bundle', () => {
      const m = agent.cache.x509Bundles()
      return m.has('b.test') && m
    })
    t.strictSame(
      [...bundles.keys()].sort(),
      ['a.test', 'b.test'],
      'own and b.test; not c.test, which no entry names',
    )
    t.strictSame(
      bundles.get('b.test')!.map((d) => d.toString('base64')),
      bRoots,
    )
    t.strictSame(agent.cache.federatedRoots().get('b.test')!.length, 1, 'the proxy sees it too')

    const socket = path.join(dir, 'agent.sock')
    const api = await startWorkloadApi({
      socketPath: socket,
      identity: agent.cache,
      attestor: new UnixAttestor(),
    })
    t.teardown(() => api.close())
    const client = new WorkloadApiClient(socket)
    t.teardown(() => client.close())
    await until('an SVID', () => agent.cache.x509Svids([{ type: 'unix', value: `uid:${uid}` }]).length > 0)
    const svidResponse = await client.fetchX509Svid()
    t.strictSame(
      Object.keys(svidResponse.federated_bundles),
      ['spiffe://b.test'],
      'FetchX509SVID: federated_bundles',
    )
    t.ok(
      svidResponse.federated_bundles['spiffe://b.test']!.equals(Buffer.from(bRoots[0]!, 'base64')),
      'the DER of b.test’s root',
    )
    const x509Bundles = await client.fetchX509Bundles()
    t.strictSame(Object.keys(x509Bundles.bundles).sort(), ['spiffe://a.test', 'spiffe://b.test'])
    const jwtBundles = await client.fetchJwtBundles()
    t.strictSame(Object.keys(jwtBundles.bundles).sort(), ['spiffe://a.test', 'spiffe://b.test'])
    const bKeys = JSON.parse(jwtBundles.bundles['spiffe://b.test']!.toString()).keys
    t.ok(bKeys.length >= 1, "b.test's JWT keys")

    const jwt = (
      await call('POST', '/v1/trust-domains/b.test/svids/jwt', {
        spiffeId: 'spiffe://b.test/partner',
        audience: 'a-web',
      })
    ).json.token
    const validated = await client.validateJwtSvid('a-web', jwt)
    t.equal(
      validated.spiffeId,
      'spiffe://b.test/partner',
      'a JWT-SVID of the federated trust domain validates',
    )
    const foreign = (
      await call('POST', '/v1/trust-domains/c.test/svids/jwt', {
        spiffeId: 'spiffe://c.test/x',
        audience: 'a-web',
      })
    ).json.token
    await t.rejects(
      client.validateJwtSvid('a-web', foreign),
      /trust domain "c.test" is not federated with the calling workload/,
      'c.test is refused (its entry does not name it, and the agent does not hold it)',
    )
    // Another workload's entry federates with c.test, so the agent now holds c.test's bundle; this
    // workload's entry does not, so c.test's tokens still do not validate for it.
    const other = await call('POST', '/v1/trust-domains/a.test/entries', {
      spiffeId: 'spiffe://a.test/other',
      parentId: agentId,
      selectors: ['unix:uid:4242424'],
      federatesWith: ['c.test'],
    })
    t.equal(other.statusCode, 201, other.body)
    await until('c.test held by the agent', () => agent.cache.jwtBundles().has('c.test'))
    await t.rejects(
      client.validateJwtSvid('a-web', foreign),
      /trust domain "c.test" is not federated with the calling workload/,
      "c.test's token is refused to a workload whose entry does not name c.test",
    )
    t.notOk(
      'spiffe://c.test' in (await client.fetchJwtBundles()).bundles,
      'nor is its JWT bundle served to it',
    )
    t.equal(
      (await client.validateJwtSvid('a-web', jwt)).spiffeId,
      'spiffe://b.test/partner',
      'b.test, which its entry names, still validates',
    )

    // b.test rotates its root; a refresh reaches the workload's stream at once.
    const updates: number[] = []
    const watch = client.watch<{ federated_bundles: Record<string, Buffer> }>(
      'FetchX509SVID',
      (msg) => updates.push(msg.federated_bundles['spiffe://b.test']?.length ?? 0),
      () => {},
    )
    t.teardown(() => watch.cancel())
    await until('the first message', () => updates.length > 0)
    t.equal((await call('POST', '/v1/trust-domains/b.test/authority/rotate?root=true')).statusCode, 200)
    t.equal((await call('POST', `${fed('a.test')}/b.test/refresh`)).json.roots, 2)
    await until('the rotated bundle on the stream', () => updates.length > 1 && updates.at(-1)! > updates[0]!)
    t.equal(agent.cache.x509Bundles().get('b.test')!.length, 2, 'old and new root of b.test')

    // An SVID b.test issues now chains to its new root, which the workload now trusts.
    const partner = await mintSvid('b.test', 'spiffe://b.test/partner')
    const chain = partner.certPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!
    const intermediate = new x509.X509Certificate(chain[1]!)
    const trusted = agent.cache
      .x509Bundles()
      .get('b.test')!
      .map((d) => new x509.X509Certificate(d))
    const anchors = []
    for (const root of trusted)
      if (await intermediate.verify({ publicKey: root.publicKey })) anchors.push(root)
    t.equal(anchors.length, 1, 'exactly one of the federated roots signed it')
    t.equal(anchors[0]!.subject, trusted[1]!.subject, 'the new one')
  },
)
