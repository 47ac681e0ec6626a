// SPIFFE interop: a go-spiffe workload (main.go) against Sigil's Workload API, serving SVIDs minted by
// a real Sigil CA (the trust service in this process). The program is built twice with a different
// embedded build name, so the two binaries differ in code and the unix attestor's sha256 selector gives
// each its own identity: "server" and "client", which then talk mTLS through spiffetls.

import { spawn } from 'node:child_process'
import path from 'node:path'
import t from 'tap'
import { UnixAttestor } from '../../agents/workload/unix.ts'
import { startWorkloadApi } from '../../agents/workload-api/server.ts'
import { openTempDir, sha256File } from '../agent/helpers.ts'
import { FixedIdentitySource, TestCa } from '../agent/identity-fixture.ts'
import { buildWorkload, GO_MISSING, goBinary, runWorkload as run } from './go-workload.ts'

const SERVER = 'spiffe://example.org/interop/server'
const CLIENT = 'spiffe://example.org/interop/client'

t.test('go-spiffe against the Sigil Workload API', async (t) => {
  const go = goBinary()
  if (!go) {
    t.fail(GO_MISSING)
    return
  }
  const dir = openTempDir(t, 'sigil-interop-')
  const build = (name: string) => buildWorkload(go, dir, name)
  const serverBin = build('server')
  const clientBin = build('client')
  const serverSha = sha256File(serverBin)
  const clientSha = sha256File(clientBin)
  t.not(serverSha, clientSha, 'two builds, two pieces of code')

  const uid = process.getuid!()
  const ca = await TestCa.start(t, ['example.org', 'partner.org'])
  const identity = await FixedIdentitySource.create(
    ca,
    ['example.org', 'partner.org'],
    [
      { spiffeId: SERVER, selectors: [`unix:uid:${uid}`, `unix:sha256:${serverSha}`] },
      {
        spiffeId: CLIENT,
        selectors: [`unix:uid:${uid}`, `unix:sha256:${clientSha}`],
        federatesWith: ['partner.org'],
        hint: 'interop',
      },
    ],
  )
  const socket = path.join(dir, 'agent.sock')
  const api = await startWorkloadApi({ socketPath: socket, identity, attestor: new UnixAttestor() })
  t.teardown(() => api.close())

  t.test('fetch: X509-SVID, bundles, JWT-SVID, JWT bundles, validation', async (t) => {
    const [report] = await run(clientBin, ['fetch', '-socket', socket, '-audience', 'interop-aud'])
    t.match(report, {
      build: 'client',
      x509SvidIds: [CLIENT],
      x509SvidHint: 'interop',
      x509ChainLength: 2,
      x509VerifiedChain: 3,
      x509KeyMatches: true,
      x509Bundles: ['example.org', 'partner.org'],
      x509ContextBundles: ['example.org', 'partner.org'],
      jwtSvidId: CLIENT,
      jwtAudience: ['interop-aud'],
      jwtLocallyValidated: CLIENT,
      jwtApiValidated: CLIENT,
      jwtWrongAudience: /InvalidArgument/,
    })
    t.match(report.jwtBundles, [/^example\.org:[1-9]/, /^partner\.org:[1-9]/])
    const [server] = await run(serverBin, ['fetch', '-socket', socket])
    t.same(server.x509SvidIds, [SERVER], 'the other build gets the other identity')
    t.same(server.x509Bundles, ['example.org'], 'and only the bundles it should trust')
  })

  t.test('spiffetls: mTLS between the two workloads with the SVIDs served', async (t) => {
    const server = spawn(serverBin, ['serve', '-socket', socket, '-allow', CLIENT], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    t.teardown(() => server.kill('SIGKILL'))
    const lines: any[] = []
    let buffered = ''
    let stderr = ''
    server.stderr.on('data', (d: Buffer) => {
      stderr += d.toString('utf8')
    })
    server.stdout.on('data', (d: Buffer) => {
      buffered += d.toString('utf8')
      const parts = buffered.split('\n')
      buffered = parts.pop()!
      for (const p of parts) if (p.trim()) lines.push(JSON.parse(p))
    })
    const until = Date.now() + 30_000
    while (lines.length === 0) {
      if (Date.now() > until || server.exitCode !== null)
        throw new Error(`the server did not start: ${stderr}`)
      await new Promise((r) => setTimeout(r, 25))
    }
    t.match(lines[0], { listening: /^127\.0\.0\.1:\d+$/, id: SERVER })
    const addr = lines[0].listening

    const [ok] = await run(clientBin, ['dial', '-socket', socket, '-addr', addr, '-expect', SERVER])
    t.same(ok, { ok: true, peer: SERVER, reply: `ping: ${CLIENT} -> ${SERVER} (server)` })

    const [wrongServer] = await run(clientBin, ['dial', '-socket', socket, '-addr', addr, '-expect', CLIENT])
    t.match(
      wrongServer,
      { ok: false, error: /unexpected ID/ },
      'the client refuses a server with another identity',
    )

    const [notAllowed] = await run(serverBin, ['dial', '-socket', socket, '-addr', addr, '-expect', SERVER])
    t.match(notAllowed, { ok: false }, 'the server refuses a client it does not authorize')
    const until2 = Date.now() + 10_000
    while (!lines.some((l) => l.accepted === false) && Date.now() < until2)
      await new Promise((r) => setTimeout(r, 25))
    t.match(lines.slice(1), [
      { accepted: true, peer: CLIENT },
      { accepted: false, error: /unexpected ID|bad certificate/ },
    ])
  })

  t.test('a rotation reaches a go-spiffe watcher over the open stream', async (t) => {
    const watching = run(clientBin, ['watch', '-socket', socket, '-n', '2'])
    // The watcher's stream is open once the server has one more identity listener.
    const until = Date.now() + 30_000
    while (identity.listenerCount === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 25))
    await new Promise((r) => setTimeout(r, 200))
    await identity.reissue()
    const updates = await watching
    t.equal(updates.length, 2, updates.map((u) => JSON.stringify(u)).join('\n'))
    t.same(updates[0].ids, [CLIENT])
    t.same(updates[1].ids, [CLIENT])
    t.not(updates[1].serials[0], updates[0].serials[0], 'the rotated X509-SVID arrived')
  })

  t.test('FetchX509SVID latency through go-spiffe (reported, never asserted)', async (t) => {
    const [bench] = await run(clientBin, ['bench', '-socket', socket, '-n', '300'])
    t.comment(
      `FetchX509SVID over go-spiffe: p50 ${bench.p50Ms} ms, p99 ${bench.p99Ms} ms, ${Math.round(bench.callsPerSecond)}/s`,
    )
    t.equal(bench.calls, 300)
  })
})
