// The data plane as a user runs it: `sigil agent run --proxy-config FILE` (two agent processes), a real
// client and server, then `sigil flows graph` and `sigil policy recommend` from the CLI. This is the
// two-service example of docs/DATA-PLANE.md.

import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { startAgentProcess } from '../helpers/agent-process.ts'
import { buildClient, echoServer, freePort, runClient, sha256File } from '../helpers/proxy.ts'
import { sigilBin, startServerProcess } from '../helpers/server-process.ts'
import { tempDir } from '../helpers/tools.ts'
import { until } from '../helpers/wait.ts'

t.test('two agent processes with proxy configs, then the CLI', async (t) => {
  const dir = tempDir(t)
  const server = await startServerProcess(t, { dataDir: path.join(dir, '.sigil') })
  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, [sigilBin, '--server', server.url, ...args], {
      cwd: dir,
      env: { ...process.env, SIGIL_TOKEN: '', SIGIL_CA_BUNDLE: '' },
      encoding: 'utf8',
      timeout: 60_000,
    })
    return { code: r.status, stdout: r.stdout, stderr: r.stderr }
  }
  t.equal(cli('trust-domain', 'create', 'example.org').code, 0)
  const client = buildClient(dir)
  const agentId = (n: string) => `spiffe://example.org/sigil/agent/join_token/${n}`
  const entry = (id: string, parent: string, selector: string) =>
    cli(
      'entry',
      'create',
      '--trust-domain',
      'example.org',
      '--spiffe-id',
      id,
      '--parent',
      parent,
      '--selector',
      selector,
    )
  t.equal(entry('spiffe://example.org/web', agentId('a'), `unix:sha256:${sha256File(client)}`).code, 0)
  t.equal(entry('spiffe://example.org/db', agentId('b'), 'unix:uid:0').code, 0)
  const token = (n: string) => {
    const r = cli('--json', 'token', 'create', '--trust-domain', 'example.org', '--spiffe-id', agentId(n))
    t.equal(r.code, 0, r.stderr)
    return JSON.parse(r.stdout).token as string
  }

  const db = await echoServer(t, 'db:')
  const mesh = await freePort()
  const upstream = await freePort()
  writeFileSync(
    path.join(dir, 'b.yaml'),
    `mesh:\n  listen: 127.0.0.1:${mesh}\nservices:\n  - name: db\n    spiffeId: spiffe://example.org/db\n    forward: 127.0.0.1:${db.port}\n`,
  )
  writeFileSync(
    path.join(dir, 'a.yaml'),
    `upstreams:\n  - name: db\n    listen: 127.0.0.1:${upstream}\n    spiffeId: spiffe://example.org/db\n    agent: 127.0.0.1:${mesh}\n`,
  )
  const start = (n: string, config: string) => {
    const p = startAgentProcess({
      serverUrl: server.url,
      caPem: server.caPem,
      trustDomain: 'example.org',
      joinToken: token(n),
      dir,
      socket: path.join(dir, `${n}.sock`),
      args: ['--proxy-config', path.join(dir, config)],
    })
    t.teardown(() => p.stop())
    return p
  }
  const b = start('b', 'b.yaml')
  const a = start('a', 'a.yaml')
  // Agent processes start slowly on a loaded two-core machine (tsx, attestation, first SVIDs): the
  // waits are generous, and a timeout shows what each agent logged.
  const withLogs = (err: unknown) => {
    throw new Error(`${(err as Error).message}\nagent a:\n${a.log()}\nagent b:\n${b.log()}`)
  }
  await until(
    'both proxies listening',
    () => a.log().includes('Sigil agent proxy listening') && b.log().includes('Sigil agent proxy listening'),
    60_000,
  ).catch(withLogs)
  const reply = await until(
    'the first request through the mesh',
    async () => {
      const r = await runClient(client, upstream, 'select 1;\n')
      return r.stdout === 'db:select 1;\n' ? r : undefined
    },
    30_000,
  ).catch(withLogs)
  t.equal(reply.stdout, 'db:select 1;\n', 'web reached db through both agents')

  const graph = await until('the flow on the graph', () => {
    const r = cli('flows', 'graph', '--trust-domain', 'example.org', '--format', 'dot')
    return r.code === 0 &&
      r.stdout.includes('spiffe://example.org/web') &&
      r.stdout.includes('spiffe://example.org/db')
      ? r.stdout
      : undefined
  }).catch(withLogs)
  t.match(graph, /^digraph/, 'Graphviz dot')
  const rec = cli('policy', 'recommend', '--trust-domain', 'example.org')
  t.equal(rec.code, 0, rec.stderr)
  t.match(rec.stdout, /from:[\s\S]*spiffe:\/\/example\.org\/web[\s\S]*to:[\s\S]*spiffe:\/\/example\.org\/db/)
  t.match(rec.stdout, new RegExp(`ports:[\\s\\S]*${db.port}`), 'with the observed port')

  writeFileSync(path.join(dir, 'policy.yaml'), rec.stdout)
  const set = cli('policy', 'set', '--trust-domain', 'example.org', '--file', path.join(dir, 'policy.yaml'))
  t.equal(set.code, 0, set.stderr)
  const after = await until('the recommended policy enforced', async () => {
    const r = await runClient(client, upstream, 'select 2;\n')
    return r.stdout === 'db:select 2;\n' ? r : undefined
  }).catch(withLogs)
  t.ok(after, 'explicit mode with the recommended policy still lets web reach db')
  const badConfig = path.join(dir, 'bad.yaml')
  writeFileSync(
    badConfig,
    'upstreams:\n  - name: db\n    listen: 127.0.0.1:1\n    spiffeID: spiffe://example.org/db\n',
  )
  const refused = cli(
    'agent',
    'run',
    '--trust-domain',
    'example.org',
    '--trust-bundle',
    path.join(dir, 'server-ca.pem'),
    '--join-token',
    'x',
    '--proxy-config',
    badConfig,
  )
  t.equal(refused.code, 2, 'a bad proxy config is a usage error')
  t.match(refused.stderr, /bad\.yaml:4: upstreams\[0\]\.spiffeID: unknown key/)
})
