// Two independent trust services (child processes, each with its own data directory and CA) federate
// both ways over https_web, set up with the real CLI. When one side rotates its root CA, the other picks
// up the new bundle at the refresh hint without anyone asking, and an X509-SVID issued under the new root
// verifies (openssl) against the federated bundle.

import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { derToPem } from '../../services/authority/pem.ts'
import { type ServerProcess, sigilBin, startServerProcess } from '../helpers/server-process.ts'
import { opensslVerify, tempDir } from '../helpers/tools.ts'
import { until } from '../helpers/wait.ts'

function cli(server: ServerProcess, args: string[]) {
  const res = spawnSync(process.execPath, [sigilBin, '--server', server.url, ...args], {
    cwd: path.dirname(server.dataDir),
    env: { ...process.env, SIGIL_DATA_DIR: server.dataDir, SIGIL_TOKEN: '', SIGIL_CA_BUNDLE: '' },
    encoding: 'utf8',
    timeout: 60_000,
  })
  return { code: res.status, stdout: res.stdout, stderr: res.stderr, json: () => JSON.parse(res.stdout) }
}

t.test('two trust services federate, and survive a root CA rotation without a manual refresh', async (t) => {
  const dir = tempDir(t)
  const config = path.join(dir, 'server.yaml')
  // Each serves a 5 s refresh hint (the minimum a fetcher honours), so the test waits seconds, not minutes.
  writeFileSync(config, 'federation:\n  refreshHint: 5s\n')
  const [a, b] = await Promise.all(
    ['a', 'b'].map((n) =>
      startServerProcess(t, { dataDir: path.join(dir, n, '.sigil'), args: ['--config', config] }),
    ),
  )
  const A = a!
  const B = b!
  t.equal(cli(A, ['trust-domain', 'create', 'a.example']).code, 0)
  t.equal(cli(B, ['trust-domain', 'create', 'b.example']).code, 0)
  const bCa = path.join(dir, 'b-server-ca.pem')
  const aCa = path.join(dir, 'a-server-ca.pem')
  writeFileSync(bCa, B.caPem)
  writeFileSync(aCa, A.caPem)

  const created = cli(A, [
    '--json',
    'federation',
    'create',
    '--trust-domain',
    'a.example',
    '--with',
    'b.example',
    '--bundle-endpoint',
    `${B.url}/v1/federation/b.example/bundle`,
    '--endpoint-ca-bundle',
    bCa,
  ])
  t.equal(created.code, 0, created.stderr)
  t.match(created.json(), {
    foreignTrustDomain: 'b.example',
    lastError: null,
    roots: 1,
    refreshHintSeconds: 5,
  })
  const human = cli(B, [
    'federation',
    'create',
    '--trust-domain',
    'b.example',
    '--with',
    'a.example',
    '--bundle-endpoint',
    `${A.url}/v1/federation/a.example/bundle`,
    '--endpoint-ca-bundle',
    aCa,
  ])
  t.equal(human.code, 0, human.stderr)
  t.match(human.stdout, /b.example now federates with a.example \(bundle sequence \d+, 1 root\(s\)\)/)

  const listed = cli(A, ['federation', 'list', '--trust-domain', 'a.example'])
  t.match(listed.stdout, /FOREIGN TRUST DOMAIN\s+PROFILE[\s\S]*b.example\s+https_web/)
  const shown = cli(B, ['federation', 'show', '--trust-domain', 'b.example', '--with', 'a.example'])
  t.match(
    shown.stdout,
    /bundle endpoint: +https:\/\/127.0.0.1:\d+\/v1\/federation\/a.example\/bundle \(https_web\)/,
  )
  const missing = cli(A, ['federation', 'show', '--trust-domain', 'a.example', '--with', 'nobody.example'])
  t.equal(missing.code, 1, 'a refused request exits 1')
  t.match(missing.stderr, /FEDERATION_NOT_FOUND/)
  const usage = cli(A, ['federation', 'create', '--trust-domain', 'a.example', '--with', 'x.example'])
  t.equal(usage.code, 2, 'a missing option is a usage error')
  const badProfile = cli(A, [
    'federation',
    'create',
    '--trust-domain',
    'a.example',
    '--with',
    'x.example',
    '--bundle-endpoint',
    'https://x.example/b',
    '--profile',
    'web',
  ])
  t.equal(badProfile.code, 2)

  const show = () =>
    cli(A, ['--json', 'federation', 'show', '--trust-domain', 'a.example', '--with', 'b.example']).json()
  const first = show()

  // B rotates its root CA. Nobody tells A.
  const bApi = B.client()
  t.teardown(() => bApi.close())
  await bApi.request('POST', '/v1/trust-domains/b.example/authority/rotate?root=true')
  const served = await bApi.request<{ spiffe_sequence: number; keys: unknown[] }>(
    'GET',
    '/v1/federation/b.example/bundle',
  )
  t.ok(served.spiffe_sequence > first.sequence, 'B published a new bundle')
  const after = await until(
    'A to fetch the rotated bundle by itself',
    () => {
      const f = show()
      return f.sequence === served.spiffe_sequence && f
    },
    30_000,
    500,
  )
  t.equal(after.roots, 2, 'A holds the old and the new root of b.example')
  t.equal(after.lastError, null)
  t.ok(Date.parse(after.lastRefreshAt) > Date.parse(first.lastRefreshAt))
  t.match(A.logs(), /federated bundle of b.example updated/, "A's log says so")

  // An X509-SVID B issues now chains to its new root, and verifies against what A holds.
  const out = path.join(dir, 'svid')
  const minted = cli(B, ['svid', 'mint', 'x509', '--spiffe-id', 'spiffe://b.example/partner', '--out', out])
  t.equal(minted.code, 0, minted.stderr)
  const chain = readFileSync(path.join(out, 'svid.pem'), 'utf8')
  const held = after.bundle.keys
    .filter((k: { use: string }) => k.use === 'x509-svid')
    .map((k: { x5c: string[] }) => derToPem(Buffer.from(k.x5c[0]!, 'base64'), 'CERTIFICATE'))
  const verified = opensslVerify(dir, chain, held.join(''), 'sslclient')
  t.ok(verified.ok, 'the new SVID verifies against the federated bundle', { output: verified.output })
  const oldOnly = opensslVerify(dir, chain, held[0]!, 'sslclient')
  t.notOk(oldOnly.ok, 'and would not against the old root alone (the refresh mattered)')

  // The other direction still works, and a delete stops it.
  t.equal(
    cli(B, ['--json', 'federation', 'refresh', '--trust-domain', 'b.example', '--with', 'a.example']).code,
    0,
  )
  t.equal(cli(B, ['federation', 'delete', '--trust-domain', 'b.example', '--with', 'a.example']).code, 0)
  t.match(
    cli(B, ['federation', 'list', '--trust-domain', 'b.example']).stdout,
    /^FOREIGN TRUST DOMAIN[^\n]*\n?$/,
  )
})
