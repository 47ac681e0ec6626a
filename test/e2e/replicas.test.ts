// Two server processes on one Redis store serve the same trust domains: an SVID minted by one verifies
// against the bundle served by the other.

import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { createLocalJWKSet, jwtVerify } from 'jose'
import t from 'tap'
import { makeCsr } from '../helpers/csr.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { startServerProcess } from '../helpers/server-process.ts'
import { opensslVerify, tempDir } from '../helpers/tools.ts'

t.test('two servers sharing one Redis', async (t) => {
  const redis = await startRedis(t)
  const dir = tempDir(t)
  const env = { SIGIL_KEK: randomBytes(32).toString('base64') }
  const a = await startServerProcess(t, { dataDir: path.join(dir, 'a'), store: redis.url, env })
  const b = await startServerProcess(t, {
    dataDir: path.join(dir, 'b'),
    store: redis.url,
    env,
    adminTokenFrom: a.dataDir,
  })
  t.equal(a.caPem, b.caPem, 'both servers present certificates from one service CA')
  const ca = a.client()
  const cb = b.client()
  await ca.request('POST', '/v1/trust-domains', { name: 'example.org' })
  const fromB = await cb.request<{ trustDomains: Array<{ name: string }> }>('GET', '/v1/trust-domains')
  t.same(
    fromB.trustDomains.map((d) => d.name),
    ['example.org'],
    'B sees the trust domain A created',
  )

  const csr = await makeCsr()
  const svidA = await ca.request<{ certChainPem: string; certChain: string[] }>(
    'POST',
    '/v1/trust-domains/example.org/svids/x509',
    { csr: csr.pem, spiffeId: 'spiffe://example.org/a' },
  )
  const svidB = await cb.request<{ certChainPem: string; certChain: string[] }>(
    'POST',
    '/v1/trust-domains/example.org/svids/x509',
    { csr: csr.pem, spiffeId: 'spiffe://example.org/b' },
  )
  t.not(svidA.certChain[1], svidB.certChain[1], 'each process signs with its own intermediate')
  const bundleA = await ca.request<string>('GET', '/v1/trust-domains/example.org/bundle?format=pem')
  const bundleB = await cb.request<string>('GET', '/v1/trust-domains/example.org/bundle?format=pem')
  t.equal(bundleA, bundleB, 'one bundle')
  t.ok(
    opensslVerify(dir, svidA.certChainPem, bundleB, 'sslclient').ok,
    "A's SVID verifies against B's bundle",
  )
  t.ok(
    opensslVerify(dir, svidB.certChainPem, bundleA, 'sslserver').ok,
    "B's SVID verifies against A's bundle",
  )

  const jwtA = await ca.request<{ token: string }>('POST', '/v1/trust-domains/example.org/svids/jwt', {
    spiffeId: 'spiffe://example.org/a',
    audience: 'x',
  })
  const spiffeB = await cb.request<{ keys: Array<{ use: string }> }>(
    'GET',
    '/v1/trust-domains/example.org/bundle',
  )
  const { payload } = await jwtVerify(
    jwtA.token,
    createLocalJWKSet({
      keys: spiffeB.keys.filter((k) => k.use === 'jwt-svid').map(({ use, ...k }) => k) as never,
    }),
    { audience: 'x' },
  )
  t.equal(payload.sub, 'spiffe://example.org/a', "A's JWT-SVID verifies against B's bundle")

  // A join token created on A is consumed once, across both.
  const entry = await cb.request<{ id: string }>('POST', '/v1/trust-domains/example.org/entries', {
    spiffeId: 'spiffe://example.org/w',
    parentId: 'spiffe://example.org/sigil/server',
    selectors: ['unix:uid:7'],
  })
  const viaA = await ca.request<{ spiffeId: string }>(
    'GET',
    `/v1/trust-domains/example.org/entries/${entry.id}`,
  )
  t.equal(viaA.spiffeId, 'spiffe://example.org/w')
  ca.close()
  cb.close()
})
