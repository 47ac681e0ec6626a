// End to end with every real part: the trust service and `sigil agent run` as child processes, a join
// token, entries bound to the sha256 of two go-spiffe binaries, then go-spiffe fetching SVIDs and JWTs
// from the real agent and talking spiffetls between the two, plus `sigil agent api fetch` as a workload.

import { spawn, spawnSync } from 'node:child_process'
import path from 'node:path'
import t from 'tap'
import { sha256File } from '../agent/helpers.ts'
import { startAgentProcess } from '../helpers/agent-process.ts'
import { sigilBin, startServerProcess } from '../helpers/server-process.ts'
import { tempDir } from '../helpers/tools.ts'
import { until } from '../helpers/wait.ts'
import { buildWorkload, GO_MISSING, goBinary, runWorkload } from './go-workload.ts'

t.test('go-spiffe and the CLI against a real agent attested with a join token', async (t) => {
  const go = goBinary()
  if (!go) {
    t.fail(GO_MISSING)
    return
  }
  const dir = tempDir(t)
  const serverBin = buildWorkload(go, dir, 'server')
  const clientBin = buildWorkload(go, dir, 'client')

  const server = await startServerProcess(t, { dataDir: path.join(dir, '.sigil') })
  const api = server.client()
  t.teardown(() => api.close())
  await api.request('POST', '/v1/trust-domains', { name: 'example.org' })
  const agentId = 'spiffe://example.org/sigil/agent/join_token/interop-node'
  const uid = process.getuid!()
  const SERVER = 'spiffe://example.org/interop/server'
  const CLIENT = 'spiffe://example.org/interop/client'
  const CLI = 'spiffe://example.org/interop/cli'
  for (const [id, bin] of [
    [SERVER, serverBin],
    [CLIENT, clientBin],
  ] as const) {
    await api.request('POST', '/v1/trust-domains/example.org/entries', {
      spiffeId: id,
      parentId: agentId,
      selectors: [`unix:uid:${uid}`, `unix:sha256:${sha256File(bin)}`],
    })
  }
  // The CLI runs as node: bound to node's code-DNA.
  await api.request('POST', '/v1/trust-domains/example.org/entries', {
    spiffeId: CLI,
    parentId: agentId,
    selectors: [`unix:uid:${uid}`, `unix:sha256:${sha256File(process.execPath)}`],
  })
  const { token } = await api.request<{ token: string }>(
    'POST',
    '/v1/trust-domains/example.org/join-tokens',
    {
      spiffeId: agentId,
    },
  )

  const agent = startAgentProcess({
    serverUrl: server.url,
    caPem: server.caPem,
    trustDomain: 'example.org',
    joinToken: token,
    dir,
    socket: path.join(dir, 'run', 'agent.sock'),
  })
  t.teardown(() => agent.stop())
  const socket = agent.socket
  await until(
    'the agent to serve the Workload API',
    () => agent.log().includes('Sigil agent serving the Workload API'),
    60_000,
  )
  t.notOk(agent.log().includes(token), 'the join token is not logged')

  const [report] = await until(
    'the client SVID through go-spiffe',
    async () => {
      try {
        return await runWorkload(clientBin, ['fetch', '-socket', socket, '-audience', 'interop-aud'])
      } catch {
        return undefined
      }
    },
    30_000,
  )
  t.match(report, {
    x509SvidIds: [CLIENT],
    x509ChainLength: 2,
    x509KeyMatches: true,
    x509Bundles: ['example.org'],
    jwtSvidId: CLIENT,
    jwtAudience: ['interop-aud'],
    jwtLocallyValidated: CLIENT,
    jwtApiValidated: CLIENT,
  })

  const cli = spawnSync(
    process.execPath,
    [sigilBin, '--json', 'agent', 'api', 'fetch', 'x509', '--socket', socket],
    {
      encoding: 'utf8',
      timeout: 60_000,
    },
  )
  t.equal(cli.status, 0, cli.stderr)
  t.match(cli.stdout, CLI, "`sigil agent api fetch x509` gets the identity bound to node's code-DNA")

  const serve = spawn(serverBin, ['serve', '-socket', socket, '-allow', CLIENT], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => serve.kill('SIGKILL'))
  let out = ''
  serve.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const listening = await until('the spiffetls server', () => /"listening":"([^"]+)"/.exec(out)?.[1], 30_000)
  const [dial] = await runWorkload(clientBin, [
    'dial',
    '-socket',
    socket,
    '-addr',
    listening,
    '-expect',
    SERVER,
  ])
  t.same(
    dial,
    { ok: true, peer: SERVER, reply: `ping: ${CLIENT} -> ${SERVER} (server)` },
    'mTLS with SVIDs from the real agent',
  )
})
