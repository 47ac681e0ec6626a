// `sigil agent api ...` as a workload: the real CLI process against a Workload API served by this test,
// which attests the CLI process itself (its uid and the sha256 of the node binary it runs).

import { spawn } from 'node:child_process'
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { UnixAttestor } from '../../agents/workload/unix.ts'
import { startWorkloadApi } from '../../agents/workload-api/server.ts'
import { sigilBin } from '../helpers/server-process.ts'
import { opensslVerify } from '../helpers/tools.ts'
import { nodeBinary, openTempDir, repoRoot, sha256File } from './helpers.ts'
import { FixedIdentitySource, TestCa } from './identity-fixture.ts'

const WORKLOAD = 'spiffe://example.org/cli-workload'
const ca = await TestCa.start(t, ['example.org', 'partner.org'])
const identity = await FixedIdentitySource.create(
  ca,
  ['example.org', 'partner.org'],
  [
    {
      spiffeId: WORKLOAD,
      selectors: [`unix:uid:${process.getuid!()}`, `unix:sha256:${sha256File(nodeBinary)}`],
      federatesWith: ['partner.org'],
    },
  ],
)
const dir = openTempDir(t)
const socketPath = path.join(dir, 'agent.sock')
const api = await startWorkloadApi({ socketPath, identity, attestor: new UnixAttestor() })
t.teardown(() => api.close())

// Asynchronous: the Workload API the CLI calls is served by this very process.
async function sigil(args: string[], env: Record<string, string> = {}) {
  const child = spawn(nodeBinary, [sigilBin, ...args], {
    cwd: repoRoot,
    env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString('utf8')
  })
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString('utf8')
  })
  const [code] = (await once(child, 'close')) as [number | null]
  return { code, stdout, stderr, json: () => JSON.parse(stdout) }
}

t.test('fetch x509: prints the SPIFFE ID and expiry; --write writes files like spire-agent', async (t) => {
  const human = await sigil(['agent', 'api', 'fetch', 'x509', '--socket', socketPath])
  t.equal(human.code, 0, human.stderr)
  t.match(human.stdout, /received 1 X509-SVID after \d+ms/)
  t.match(human.stdout, new RegExp(`SPIFFE ID: ${WORKLOAD}  expires \\d{4}-\\d\\d-\\d\\dT`))
  t.match(human.stdout, /federated bundles: spiffe:\/\/partner\.org/)

  const out = path.join(dir, 'svids')
  const res = await sigil(['--json', 'agent', 'api', 'fetch', 'x509', '--socket', socketPath, '--write', out])
  t.equal(res.code, 0, res.stderr)
  const doc = res.json()
  t.equal(doc.svids.length, 1)
  t.match(doc.svids[0], { index: 0, spiffeId: WORKLOAD, serial: /^[0-9a-f]+$/, expiresAt: String })
  t.same(doc.federatedBundles, ['spiffe://partner.org'])
  const file = (name: string) => path.join(out, name)
  t.same(doc.files, ['svid.0.pem', 'svid.0.key', 'bundle.0.pem', 'federated_bundle.0.0.pem'].map(file))
  t.equal(statSync(file('svid.0.key')).mode & 0o777, 0o600, 'the key file is 0600')
  const chainPem = readFileSync(file('svid.0.pem'), 'utf8')
  const leaf = new X509Certificate(chainPem)
  t.equal(leaf.subjectAltName, `URI:${WORKLOAD}`)
  const key = createPrivateKey(readFileSync(file('svid.0.key')))
  t.ok(
    createPublicKey(key)
      .export({ format: 'der', type: 'spki' })
      .equals(leaf.publicKey.export({ format: 'der', type: 'spki' })),
    'svid.0.key is the SVID key',
  )
  const verified = opensslVerify(dir, chainPem, readFileSync(file('bundle.0.pem'), 'utf8'), 'sslclient')
  t.ok(verified.ok, `openssl verifies svid.0.pem against bundle.0.pem: ${verified.output}`)
  t.match(new X509Certificate(readFileSync(file('federated_bundle.0.0.pem'))).subject, /partner\.org/)
})

t.test('SPIFFE_ENDPOINT_SOCKET is used without --socket', async (t) => {
  const res = await sigil(['--json', 'agent', 'api', 'fetch', 'x509'], {
    SPIFFE_ENDPOINT_SOCKET: `unix://${socketPath}`,
  })
  t.equal(res.code, 0, res.stderr)
  t.equal(res.json().svids[0].spiffeId, WORKLOAD)
})

t.test('fetch jwt and validate jwt', async (t) => {
  const fetched = await sigil([
    'agent',
    'api',
    'fetch',
    'jwt',
    '--audience',
    'billing',
    '--socket',
    socketPath,
  ])
  t.equal(fetched.code, 0, fetched.stderr)
  const token = fetched.stdout.trim()
  t.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'one identity: the token alone')
  const json = await sigil([
    '--json',
    'agent',
    'api',
    'fetch',
    'jwt',
    '--audience',
    'billing',
    '--socket',
    socketPath,
  ])
  t.match(json.json().svids[0], { spiffeId: WORKLOAD, token: String, expiresAt: String })

  const valid = await sigil([
    'agent',
    'api',
    'validate',
    'jwt',
    '--audience',
    'billing',
    '--token',
    token,
    '--socket',
    socketPath,
  ])
  t.equal(valid.code, 0, valid.stderr)
  t.equal(valid.stdout.trim(), `valid JWT-SVID for ${WORKLOAD}`)
  const validJson = await sigil([
    '--json',
    'agent',
    'api',
    'validate',
    'jwt',
    '--audience',
    'billing',
    '--token',
    token,
    '--socket',
    socketPath,
  ])
  t.match(validJson.json(), { spiffeId: WORKLOAD, claims: { sub: WORKLOAD, aud: 'billing' } })

  const wrong = await sigil([
    'agent',
    'api',
    'validate',
    'jwt',
    '--audience',
    'other',
    '--token',
    token,
    '--socket',
    socketPath,
  ])
  t.equal(wrong.code, 1, 'an invalid token is a refused request')
  t.match(wrong.stderr, /^error: INVALID_ARGUMENT: .*aud/)
  const wrongJson = await sigil([
    '--json',
    'agent',
    'api',
    'validate',
    'jwt',
    '--audience',
    'other',
    '--token',
    token,
    '--socket',
    socketPath,
  ])
  t.equal(wrongJson.code, 1)
  t.match(JSON.parse(wrongJson.stderr), { error: { code: 'INVALID_ARGUMENT', message: String } })
})

t.test('exit codes: 2 for usage errors, 1 for refusals and a missing agent', async (t) => {
  const noAudience = await sigil(['agent', 'api', 'fetch', 'jwt', '--socket', socketPath])
  t.equal(noAudience.code, 2)
  t.match(noAudience.stderr, /--audience/)
  const noToken = await sigil(['agent', 'api', 'validate', 'jwt', '--audience', 'a', '--socket', socketPath])
  t.equal(noToken.code, 2)
  const badEnv = await sigil(['agent', 'api', 'fetch', 'x509'], {
    SPIFFE_ENDPOINT_SOCKET: 'tcp://127.0.0.1:8081',
  })
  t.equal(badEnv.code, 2)
  t.match(
    badEnv.stderr,
    /^error: USAGE: SPIFFE_ENDPOINT_SOCKET "tcp:\/\/127.0.0.1:8081" is not a Unix socket/,
  )
  const missing = await sigil([
    'agent',
    'api',
    'fetch',
    'x509',
    '--socket',
    path.join(dir, 'nobody-here.sock'),
  ])
  t.equal(missing.code, 1)
  t.match(
    missing.stderr,
    /^error: UNAVAILABLE: no Workload API socket at .*nobody-here\.sock; is the agent running\?/,
  )

  const lonely = await FixedIdentitySource.create(
    ca,
    ['example.org'],
    [{ spiffeId: 'spiffe://example.org/someone-else', selectors: ['unix:uid:4242'] }],
  )
  const otherPath = path.join(dir, 'other.sock')
  const other = await startWorkloadApi({
    socketPath: otherPath,
    identity: lonely,
    attestor: new UnixAttestor(),
  })
  t.teardown(() => other.close())
  const denied = await sigil(['agent', 'api', 'fetch', 'x509', '--socket', otherPath])
  t.equal(denied.code, 1)
  t.equal(denied.stderr, 'error: PERMISSION_DENIED: no identity issued\n')
  t.equal(denied.stdout, '', 'and nothing on stdout')
})
