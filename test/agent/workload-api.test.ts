// The Workload API over a real Unix socket, serving SVIDs minted by a real Sigil CA, with the real unix
// attestor identifying real processes: this test process, and workloads started from copies of node.

import { spawn } from 'node:child_process'
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { decodeJwt } from 'jose'
import t from 'tap'
import { UnixAttestor } from '../../agents/workload/unix.ts'
import { WorkloadApiClient } from '../../agents/workload-api/client.ts'
import type { X509SvidResponse } from '../../agents/workload-api/proto.ts'
import { startWorkloadApi, type WorkloadApi } from '../../agents/workload-api/server.ts'
import { DEFAULT_SOCKET_PATH, resolveSocketPath } from '../../agents/workload-api/socket-path.ts'
import {
  copyExecutable,
  copyWithOneByteChanged,
  nodeBinary,
  openTempDir,
  repoRoot,
  runWorkloadClient,
  sha256File,
  startWorkloadClient,
  waitFor,
} from './helpers.ts'
import { FixedIdentitySource, type FixtureEntry, TestCa } from './identity-fixture.ts'

const uid = process.getuid!()
const nodeSha = sha256File(nodeBinary)
const WORKLOAD = 'spiffe://example.org/workload'
const entries: FixtureEntry[] = [
  {
    spiffeId: WORKLOAD,
    selectors: [`unix:uid:${uid}`, `unix:sha256:${nodeSha}`],
    federatesWith: ['partner.org'],
    hint: 'internal',
  },
  { spiffeId: 'spiffe://example.org/elsewhere', selectors: ['unix:uid:4242'] },
]

const ca = await TestCa.start(t, ['example.org', 'partner.org'])
const identity = await FixedIdentitySource.create(ca, ['example.org', 'partner.org'], entries)
const dir = openTempDir(t)
const warnings: Array<{ obj: any; msg: string }> = []
const log = { info() {}, warn: (obj: object, msg: string) => warnings.push({ obj, msg }) }

async function start(socketPath: string, opts: { idleConnectionMs?: number } = {}): Promise<WorkloadApi> {
  const api = await startWorkloadApi({
    socketPath,
    identity,
    attestor: new UnixAttestor({ log }),
    log,
    ...opts,
  })
  t.teardown(() => api.close())
  return api
}

function client(socketPath: string, opts: ConstructorParameters<typeof WorkloadApiClient>[1] = {}) {
  const c = new WorkloadApiClient(socketPath, opts)
  t.teardown(() => c.close())
  return c
}

const socketPath = path.join(dir, 'run', 'sigil', 'agent.sock')
const api = await start(socketPath)
const me = client(socketPath)

function leafOf(svid: { x509_svid: Buffer }): X509Certificate {
  return new X509Certificate(svid.x509_svid)
}

t.test('the socket: parent directory created, mode 0666, stale files replaced, live ones kept', async (t) => {
  t.ok(statSync(socketPath).isSocket())
  t.equal(statSync(socketPath).mode & 0o777, 0o666, 'any uid may connect; attestation decides')
  await t.rejects(
    startWorkloadApi({ socketPath, identity, attestor: new UnixAttestor() }),
    /another process is serving on .*agent\.sock/,
    'a live socket is not taken over',
  )
  const file = path.join(dir, 'not-a-socket')
  writeFileSync(file, 'x')
  await t.rejects(
    startWorkloadApi({ socketPath: file, identity, attestor: new UnixAttestor() }),
    /is not a socket/,
  )

  // An agent killed with SIGKILL leaves its socket file behind, with nobody serving it.
  const stalePath = path.join(dir, 'stale.sock')
  const crashed = spawn(
    nodeBinary,
    ['-e', `require('net').createServer().listen(${JSON.stringify(stalePath)}, () => console.log('up'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  await once(crashed.stdout!, 'data')
  crashed.kill('SIGKILL')
  await once(crashed, 'exit')
  t.ok(statSync(stalePath).isSocket(), 'a stale socket file')
  const second = await startWorkloadApi({ socketPath: stalePath, identity, attestor: new UnixAttestor() })
  const c = new WorkloadApiClient(stalePath)
  t.equal((await c.fetchX509Svid()).svids[0]!.spiffe_id, WORKLOAD)
  c.close()
  await second.close()
  t.notOk(existsSync(stalePath), 'the socket file is removed on close')
})

t.test('socket directories the API creates are open to every uid, whatever the umask', async (t) => {
  const nested = path.join(dir, 'umask', 'a', 'b', 'agent.sock')
  const old = process.umask(0o077)
  let nestedApi: WorkloadApi
  try {
    nestedApi = await startWorkloadApi({ socketPath: nested, identity, attestor: new UnixAttestor() })
  } finally {
    process.umask(old)
  }
  t.teardown(() => nestedApi.close())
  for (const d of ['umask', 'umask/a', 'umask/a/b'])
    t.equal(statSync(path.join(dir, d)).mode & 0o777, 0o755, `${d} is 0755`)
  t.equal(statSync(nested).mode & 0o777, 0o666)
})

t.test('the socket path: --socket, else SPIFFE_ENDPOINT_SOCKET, else the default', async (t) => {
  t.equal(resolveSocketPath('/a.sock', { SPIFFE_ENDPOINT_SOCKET: 'unix:///b.sock' }), '/a.sock')
  t.equal(resolveSocketPath('unix:///a.sock', {}), '/a.sock')
  t.equal(resolveSocketPath(undefined, { SPIFFE_ENDPOINT_SOCKET: 'unix:///b.sock' }), '/b.sock')
  t.equal(resolveSocketPath(undefined, { SPIFFE_ENDPOINT_SOCKET: 'unix:/c.sock' }), '/c.sock')
  t.equal(resolveSocketPath(undefined, { SPIFFE_ENDPOINT_SOCKET: '' }), DEFAULT_SOCKET_PATH)
  t.equal(resolveSocketPath(undefined, {}), '/run/sigil/agent.sock')
  t.throws(() => resolveSocketPath(undefined, { SPIFFE_ENDPOINT_SOCKET: 'tcp://127.0.0.1:1' }), {
    name: 'SocketPathError',
    message: /SPIFFE_ENDPOINT_SOCKET "tcp:\/\/127.0.0.1:1" is not a Unix socket address/,
  })
  t.throws(() => resolveSocketPath('relative.sock', {}), /--socket/)
})

t.test('requests without the security header: InvalidArgument', async (t) => {
  const bare = client(socketPath, { securityHeader: false })
  const refused = { code: grpc.status.INVALID_ARGUMENT, details: 'security header missing from request' }
  await t.rejects(bare.fetchX509Svid(), refused, 'FetchX509SVID')
  await t.rejects(bare.fetchX509Bundles(), refused, 'FetchX509Bundles')
  await t.rejects(bare.fetchJwtBundles(), refused, 'FetchJWTBundles')
  await t.rejects(bare.fetchJwtSvid(['aud']), refused, 'FetchJWTSVID')
  await t.rejects(bare.validateJwtSvid('aud', 'x.y.z'), refused, 'ValidateJWTSVID')
})

t.test('FetchX509SVID: this process gets its own X509-SVID, key, bundle and federated bundle', async (t) => {
  const res = await me.fetchX509Svid()
  t.equal(res.svids.length, 1, 'only the entries whose selectors this process has')
  const svid = res.svids[0]!
  t.equal(svid.spiffe_id, WORKLOAD)
  t.equal(svid.hint, 'internal')
  const leaf = leafOf(svid)
  t.equal(leaf.subjectAltName, `URI:${WORKLOAD}`)
  const key = createPrivateKey({ key: svid.x509_svid_key, format: 'der', type: 'pkcs8' })
  t.ok(
    createPublicKey(key)
      .export({ format: 'der', type: 'spki' })
      .equals(leaf.publicKey.export({ format: 'der', type: 'spki' })),
    'the key is the SVID key',
  )
  const root = new X509Certificate(svid.bundle)
  const chain = splitDer(svid.x509_svid)
  t.equal(chain.length, 2, 'leaf and intermediate')
  const intermediate = new X509Certificate(chain[1]!)
  t.ok(
    leaf.verify(intermediate.publicKey) && intermediate.verify(root.publicKey),
    'the chain verifies to the bundle',
  )
  t.same(Object.keys(res.federated_bundles), ['spiffe://partner.org'])
  t.match(new X509Certificate(res.federated_bundles['spiffe://partner.org']!).subject, /partner\.org root CA/)
})

t.test('bundles: X.509 and JWT, keyed by trust domain SPIFFE ID', async (t) => {
  const x509 = await me.fetchX509Bundles()
  t.same(Object.keys(x509.bundles), ['spiffe://example.org', 'spiffe://partner.org'])
  t.match(new X509Certificate(x509.bundles['spiffe://example.org']!).subject, /example\.org root CA/)
  const jwt = await me.fetchJwtBundles()
  t.same(Object.keys(jwt.bundles), ['spiffe://example.org', 'spiffe://partner.org'])
  const jwks = JSON.parse(jwt.bundles['spiffe://example.org']!.toString('utf8'))
  t.ok(jwks.keys.length >= 1)
  t.match(jwks.keys[0], { kty: 'EC', crv: 'P-256', kid: String })
})

t.test('JWT-SVIDs: fetch for an audience, validate through the API', async (t) => {
  const res = await me.fetchJwtSvid(['billing', 'audit'])
  t.equal(res.svids.length, 1)
  t.equal(res.svids[0]!.spiffe_id, WORKLOAD)
  t.equal(res.svids[0]!.hint, 'internal')
  const token = res.svids[0]!.svid
  const claims = decodeJwt(token)
  t.equal(claims.sub, WORKLOAD)
  t.same(claims.aud, ['billing', 'audit'])
  const valid = await me.validateJwtSvid('billing', token)
  t.equal(valid.spiffeId, WORKLOAD)
  t.match(valid.claims, { sub: WORKLOAD, aud: ['billing', 'audit'], exp: Number })
  await t.rejects(me.validateJwtSvid('elsewhere', token), {
    code: grpc.status.INVALID_ARGUMENT,
    details: /aud/,
  })
  await t.rejects(me.validateJwtSvid('billing', `${token.slice(0, -4)}AAAA`), {
    code: grpc.status.INVALID_ARGUMENT,
  })
  await t.rejects(me.validateJwtSvid('billing', ''), {
    code: grpc.status.INVALID_ARGUMENT,
    details: 'svid must be specified',
  })
  await t.rejects(me.fetchJwtSvid([]), {
    code: grpc.status.INVALID_ARGUMENT,
    details: 'audience must be specified',
  })
  t.equal((await me.fetchJwtSvid(['x'], WORKLOAD)).svids.length, 1, 'one identity by SPIFFE ID')
  await t.rejects(
    me.fetchJwtSvid(['x'], 'spiffe://example.org/elsewhere'),
    { code: grpc.status.PERMISSION_DENIED, details: 'no identity issued' },
    "another workload's identity is never issued",
  )
})

t.test('workloads from copies of node: one byte changed means no identity', async (t) => {
  const bin = openTempDir(t)
  const exact = path.join(bin, 'node-exact')
  const changed = path.join(bin, 'node-changed')
  copyExecutable(nodeBinary, exact)
  copyWithOneByteChanged(nodeBinary, changed, 'Usage: node')
  const ok = await runWorkloadClient([socketPath, 'x509'], { node: exact })
  t.same(ok, { ok: true, spiffeIds: [WORKLOAD] }, 'an exact copy runs the same code: the same identity')
  const denied = await runWorkloadClient([socketPath, 'x509'], { node: changed })
  t.same(
    denied,
    { ok: false, code: 'PERMISSION_DENIED', details: 'no identity issued' },
    "one byte changed: another sha256, and never the other workload's SVID",
  )
})

t.test('a caller with no identity gets no bundles either (unless verifiers are allowed)', async (t) => {
  const lonely = await FixedIdentitySource.create(
    ca,
    ['example.org'],
    [{ spiffeId: 'spiffe://example.org/elsewhere', selectors: ['unix:uid:4242'] }],
  )
  const closedPath = path.join(dir, 'closed.sock')
  const closed = await startWorkloadApi({
    socketPath: closedPath,
    identity: lonely,
    attestor: new UnixAttestor(),
  })
  t.teardown(() => closed.close())
  const c = client(closedPath)
  const denied = { code: grpc.status.PERMISSION_DENIED, details: 'no identity issued' }
  await t.rejects(c.fetchX509Svid(), denied)
  await t.rejects(c.fetchX509Bundles(), denied)
  await t.rejects(c.fetchJwtBundles(), denied)
  await t.rejects(c.fetchJwtSvid(['a']), denied)
  await t.rejects(c.validateJwtSvid('a', 'x.y.z'), denied)

  const openPath = path.join(dir, 'open.sock')
  const open = await startWorkloadApi({
    socketPath: openPath,
    identity: lonely,
    attestor: new UnixAttestor(),
    allowUnauthenticatedVerifiers: true,
  })
  t.teardown(() => open.close())
  const v = client(openPath)
  t.same(Object.keys((await v.fetchX509Bundles()).bundles), ['spiffe://example.org'])
  await t.rejects(v.fetchX509Svid(), denied, 'still no SVID')
})

t.test('streams push updates when the identity source changes', async (t) => {
  const messages: X509SvidResponse[] = []
  const errors: grpc.ServiceError[] = []
  const listenersBefore = identity.listenerCount
  const watch = me.watch<X509SvidResponse>(
    'FetchX509SVID',
    (m) => messages.push(m),
    (e) => errors.push(e),
  )
  await waitFor('the first message', () => messages.length === 1)
  t.equal(identity.listenerCount, listenersBefore + 1)
  const firstSerial = leafOf(messages[0]!.svids[0]!).serialNumber

  identity.notify()
  await new Promise((r) => setTimeout(r, 200))
  t.equal(messages.length, 1, 'a change that changes nothing sends nothing')

  await identity.reissue()
  await waitFor('the rotated SVID', () => messages.length === 2)
  t.not(leafOf(messages[1]!.svids[0]!).serialNumber, firstSerial, 'a new SVID after rotation')

  const jwtMessages: Array<{ bundles: Record<string, Buffer> }> = []
  const jwtWatch = me.watch<{ bundles: Record<string, Buffer> }>(
    'FetchJWTBundles',
    (m) => jwtMessages.push(m),
    () => {},
  )
  await waitFor('the first JWT bundle', () => jwtMessages.length === 1)
  await ca.rotate('example.org')
  await identity.reissue()
  await waitFor('the new JWT bundle', () => jwtMessages.length === 2)
  const kids = (m: { bundles: Record<string, Buffer> }) =>
    JSON.parse(m.bundles['spiffe://example.org']!.toString()).keys.map((k: { kid: string }) => k.kid)
  t.not(kids(jwtMessages[1]!).join(), kids(jwtMessages[0]!).join(), 'the JWT key rotation reaches the stream')
  jwtWatch.cancel()

  await identity.setEntries(entries.filter((e) => e.spiffeId !== WORKLOAD))
  await waitFor('the stream to end', () => errors.length === 1)
  t.match(
    errors[0],
    { code: grpc.status.PERMISSION_DENIED, details: 'no identity issued' },
    'entry removed: stream ends',
  )
  watch.cancel()
  await waitFor('listeners to go', () => identity.listenerCount === listenersBefore)
  await identity.setEntries(entries)
})

t.test('a connection handed to another process after its owner exits is refused', async (t) => {
  const script = path.join(repoRoot, 'test/agent/fixtures/handoff.ts')
  const parent = spawn(nodeBinary, ['--import', 'tsx', script, 'parent', socketPath], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  parent.stdout.on('data', (d: Buffer) => {
    out += d.toString('utf8')
  })
  parent.stderr.on('data', (d: Buffer) => {
    err += d.toString('utf8')
  })
  // The pipe closes when the child, which inherited it, is done too.
  await once(parent.stdout, 'end')
  const result = JSON.parse(out.trim() || `{"stderr": ${JSON.stringify(err)}}`)
  t.match(result, {
    status: String(grpc.status.UNAUTHENTICATED),
    message: `could not verify the calling process: process ${parent.pid} has exited`,
    data: 0,
  })
})

t.test('garbage on the socket: the connection is dropped, the server carries on', async (t) => {
  const before = api.connectionCount()
  for (const junk of [
    Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
    Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131) % 256)),
    Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.alloc(64, 0xff)]),
  ]) {
    const s = net.connect(socketPath)
    s.on('error', () => {})
    s.on('data', () => {})
    await once(s, 'connect')
    s.write(junk)
    await once(s, 'close')
  }
  t.equal((await me.fetchX509Svid()).svids[0]!.spiffe_id, WORKLOAD, 'still serving')
  await waitFor('the dropped connections to be forgotten', () => api.connectionCount() === before)
})

t.test('a connection that never calls is closed after idleConnectionMs', async (t) => {
  const idlePath = path.join(dir, 'idle.sock')
  const idleApi = await start(idlePath, { idleConnectionMs: 300 })
  const s = net.connect(idlePath)
  s.on('error', () => {})
  s.resume()
  await once(s, 'connect')
  await waitFor('the server to see it', () => idleApi.connectionCount() === 1)
  const started = Date.now()
  await once(s, 'close')
  t.ok(Date.now() - started >= 200, 'closed once the idle time passed')
  await waitFor('the server to forget it', () => idleApi.connectionCount() === 0)
  const c = client(idlePath)
  t.equal((await c.fetchX509Svid()).svids[0]!.spiffe_id, WORKLOAD, 'a connection that calls is served')
})

t.test('a workload killed mid-stream: no leak, no crash', async (t) => {
  // Streams of earlier one-shot fetches end a moment after their client cancels.
  await waitFor('earlier streams to end', () => identity.listenerCount === 0)
  const listenersBefore = identity.listenerCount
  const connectionsBefore = api.connectionCount()
  const watcher = startWorkloadClient([socketPath, 'watch-x509'])
  await waitFor('the stream to start', () => watcher.lines.length === 1, 20_000)
  t.same(watcher.lines[0], { ok: true, spiffeIds: [WORKLOAD] })
  t.equal(identity.listenerCount, listenersBefore + 1)
  watcher.child.kill('SIGKILL')
  await watcher.exited
  await waitFor('the stream to be dropped', () => identity.listenerCount === listenersBefore)
  await waitFor('the connection to be dropped', () => api.connectionCount() === connectionsBefore)
  identity.notify()
  t.equal((await me.fetchX509Svid()).svids.length, 1, 'still serving')
})

t.test('a workload killed mid-call: the answer goes nowhere, the server carries on', async (t) => {
  identity.jwtDelayMs = 500
  t.teardown(() => {
    identity.jwtDelayMs = 0
  })
  const caller = startWorkloadClient([socketPath, 'jwt', 'slow'])
  await waitFor('the call to start', () => caller.lines.length === 1, 20_000)
  await new Promise((r) => setTimeout(r, 150))
  caller.child.kill('SIGKILL')
  await caller.exited
  await new Promise((r) => setTimeout(r, 600))
  identity.jwtDelayMs = 0
  t.equal((await me.fetchJwtSvid(['after'])).svids.length, 1, 'still serving')
})

t.test('close: streams end, the socket goes', async (t) => {
  const closingPath = path.join(dir, 'closing', 'agent.sock')
  mkdirSync(path.dirname(closingPath), { recursive: true })
  const closing = await startWorkloadApi({ socketPath: closingPath, identity, attestor: new UnixAttestor() })
  const c = client(closingPath)
  const errors: grpc.ServiceError[] = []
  let got = 0
  c.watch(
    'FetchX509SVID',
    () => got++,
    (e) => errors.push(e),
  )
  await waitFor('the first message', () => got === 1)
  await closing.close()
  await waitFor('the stream to fail', () => errors.length === 1)
  t.ok([grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.INTERNAL].includes(errors[0]!.code))
  t.notOk(existsSync(closingPath))
})

t.test('nothing above was logged as an unexpected failure', async (t) => {
  t.notOk(
    warnings.some((w) => /workload API call failed|listener error/.test(w.msg)),
    JSON.stringify(warnings.filter((w) => /failed|error/.test(w.msg))),
  )
})

function splitDer(chain: Buffer): Buffer[] {
  const out: Buffer[] = []
  let rest = chain
  while (rest.length) {
    const n = rest[1]! & 0x7f
    const len = rest[1]! < 0x80 ? rest[1]! : rest.subarray(2, 2 + n).reduce((a, b) => a * 256 + b, 0)
    const size = (rest[1]! < 0x80 ? 2 : 2 + n) + len
    out.push(rest.subarray(0, size))
    rest = rest.subarray(size)
  }
  return out
}
