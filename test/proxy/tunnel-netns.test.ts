// Hybrid cloud, for real: three network namespaces the test creates. env-a and env-b have no route to
// each other; both reach the `broker` namespace, where the trust service and a standalone broker run.
// An app in env-a reaches a service in env-b through the tunnel; a capture at the broker holds no
// plaintext; the policy can deny the tunnel; killing and restarting the broker re-establishes it.
// Every process is real and runs in its namespace through `ip netns exec`.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { buildClient, sha256File } from '../helpers/proxy.ts'
import { sigilBin } from '../helpers/server-process.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'
import { until } from '../helpers/wait.ts'

const id = process.pid % 10000
const NS = { a: `sg-a-${id}`, b: `sg-b-${id}`, k: `sg-k-${id}` }
const TD = 'example.org'
const ipx = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' }).toString()
const inNs = (ns: string, ...args: string[]) => ipx('netns', 'exec', ns, ...args)

interface Proc {
  proc: ChildProcess
  out(): string
  kill(signal?: NodeJS.Signals): Promise<void>
}

function run(t: { teardown(fn: () => unknown): void }, ns: string, cmd: string[], cwd?: string): Proc {
  const proc = spawn('ip', ['netns', 'exec', ns, ...cmd], {
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd,
    env: { ...process.env, SIGIL_LOG_LEVEL: 'info' },
  })
  let out = ''
  proc.stdout!.on('data', (d) => {
    out += d
  })
  proc.stderr!.on('data', (d) => {
    out += d
  })
  proc.stdin!.on('error', () => {})
  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    const done = once(proc, 'exit')
    proc.kill(signal)
    await done
  }
  t.teardown(() => kill('SIGKILL'))
  return { proc, out: () => out, kill }
}

async function clientRun(bin: string, port: number, input: string): Promise<string> {
  const child = spawn('ip', ['netns', 'exec', NS.a, bin, '127.0.0.1', String(port)], { timeout: 20_000 })
  let out = ''
  child.stdout.on('data', (d) => {
    out += d
  })
  child.stdin.on('error', () => {})
  child.stdin.end(input)
  await once(child, 'exit')
  return out
}

t.test('a tunnel between environments that cannot reach each other', async (t) => {
  requireTool('ip', 'apt-get install -y iproute2 (or npm run setup)')
  requireTool('tcpdump', 'apt-get install -y tcpdump (or npm run setup)')
  if (process.getuid?.() !== 0) throw new Error('creating network namespaces needs root (ip netns add)')
  for (const ns of Object.values(NS)) {
    ipx('netns', 'add', ns)
    t.teardown(() => ipx('netns', 'del', ns))
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up')
  }
  // env-a <-> broker: 10.77.1.0/24; env-b <-> broker: 10.77.2.0/24. The broker namespace does not forward.
  for (const [env, net] of [
    ['a', 1],
    ['b', 2],
  ] as const) {
    const host = `sgv${env}${id}`
    const peer = `sgw${env}${id}`
    ipx('link', 'add', host, 'type', 'veth', 'peer', 'name', peer)
    ipx('link', 'set', host, 'netns', NS.k)
    ipx('link', 'set', peer, 'netns', NS[env])
    inNs(NS.k, 'ip', 'addr', 'add', `10.77.${net}.1/24`, 'dev', host)
    inNs(NS.k, 'ip', 'link', 'set', host, 'up')
    inNs(NS[env], 'ip', 'addr', 'add', `10.77.${net}.2/24`, 'dev', peer)
    inNs(NS[env], 'ip', 'link', 'set', peer, 'up')
  }
  inNs(NS.k, 'sysctl', '-qw', 'net.ipv4.ip_forward=0')
  t.throws(
    () => inNs(NS.a, 'python3', '-c', 'import socket; socket.create_connection(("10.77.2.2", 9), timeout=2)'),
    'control: env-a has no route to env-b',
  )

  const dir = tempDir(t)
  const dataDir = path.join(dir, '.sigil')
  writeFileSync(path.join(dir, 'server.yaml'), 'serverNames: ["10.77.1.1", "10.77.2.1"]\n')
  const server = run(
    t,
    NS.k,
    [
      process.execPath,
      sigilBin,
      'server',
      'run',
      '--config',
      path.join(dir, 'server.yaml'),
      '--data-dir',
      dataDir,
      '--listen',
      '0.0.0.0:8443',
    ],
    dir,
  )
  await until('the trust service', () => server.out().includes('Sigil trust service listening'), 30_000)
  const startBroker = () =>
    run(
      t,
      NS.k,
      [
        process.execPath,
        sigilBin,
        'broker',
        'run',
        '--config',
        path.join(dir, 'server.yaml'),
        '--data-dir',
        dataDir,
        '--listen',
        '0.0.0.0:8444',
      ],
      dir,
    )
  let broker = startBroker()
  await until('the broker', () => broker.out().includes('Sigil tunnel broker listening'), 30_000)

  // The CLI in the broker's namespace, from the data dir's parent (where it finds the admin token).
  const sigil = (...args: string[]) =>
    execFileSync('ip', ['netns', 'exec', NS.k, process.execPath, sigilBin, ...args], { cwd: dir }).toString()
  const json = (...args: string[]) =>
    JSON.parse(sigil('--server', 'https://127.0.0.1:8443', '--json', ...args))
  sigil('trust-domain', 'create', TD)
  const agentId = (n: string) => `spiffe://${TD}/sigil/agent/join_token/${n}`
  const client = buildClient(dir)
  const entry = (spiffeId: string, parent: string, selector: string) =>
    json(
      'entry',
      'create',
      '--trust-domain',
      TD,
      '--spiffe-id',
      spiffeId,
      '--parent',
      parent,
      '--selector',
      selector,
    )
  entry(`spiffe://${TD}/web`, agentId('env-a'), `unix:sha256:${sha256File(client)}`)
  entry(`spiffe://${TD}/db`, agentId('env-b'), 'unix:uid:0')
  json(
    'tunnel',
    'create',
    '--trust-domain',
    TD,
    '--name',
    'db',
    '--spiffe-id',
    `spiffe://${TD}/db`,
    '--agent',
    agentId('env-b'),
  )

  // The service in env-b, and the two agents.
  const service = run(t, NS.b, [
    'python3',
    '-c',
    'import socketserver\nclass H(socketserver.StreamRequestHandler):\n  def handle(self):\n    for line in self.rfile:\n      self.wfile.write(b"env-b:" + line)\nsocketserver.ThreadingTCPServer.allow_reuse_address=True\nsocketserver.ThreadingTCPServer(("127.0.0.1", 7000), H).serve_forever()',
  ])
  void service
  const ca = readFileSync(path.join(dataDir, 'server-ca.pem'), 'utf8')
  writeFileSync(path.join(dir, 'ca.pem'), ca)
  writeFileSync(
    path.join(dir, 'b.yaml'),
    'broker: { servers: ["10.77.2.1:8444"] }\nmesh: { listen: "127.0.0.1:15008" }\nservices:\n  - { name: db, spiffeId: "spiffe://example.org/db", forward: "127.0.0.1:7000" }\n',
  )
  writeFileSync(
    path.join(dir, 'a.yaml'),
    'broker: { servers: ["10.77.1.1:8444"] }\nupstreams:\n  - { name: db, listen: "127.0.0.1:15432", spiffeId: "spiffe://example.org/db", tunnel: db }\n',
  )
  const agent = (env: 'a' | 'b', server: string) => {
    const token = json('token', 'create', '--trust-domain', TD, '--spiffe-id', agentId(`env-${env}`))
      .token as string
    return run(t, NS[env], [
      process.execPath,
      sigilBin,
      '--server',
      server,
      'agent',
      'run',
      '--trust-domain',
      TD,
      '--trust-bundle',
      path.join(dir, 'ca.pem'),
      '--join-token',
      token,
      '--socket',
      path.join(dir, `${env}.sock`),
      '--proxy-config',
      path.join(dir, `${env}.yaml`),
    ])
  }
  const b = agent('b', 'https://10.77.2.1:8443')
  const a = agent('a', 'https://10.77.1.1:8443')
  await until(
    'both agents on the broker',
    () =>
      a.out().includes('connected to the broker') && b.out().includes('connected to the broker')
        ? true
        : undefined,
    30_000,
  ).catch((err) => {
    throw new Error(`${err.message}\nA:\n${a.out()}\nB:\n${b.out()}\nbroker:\n${broker.out()}`)
  })

  const capture = path.join(dir, 'broker.pcap')
  const dump = run(t, NS.k, [
    'tcpdump',
    '-Z',
    'root',
    '--immediate-mode',
    '-i',
    'any',
    '-U',
    '-s',
    '0',
    '-w',
    capture,
    'tcp',
  ])
  await until('tcpdump running', () => dump.out().includes('listening on'), 10_000)
  const reply = await clientRun(client, 15432, 'PLAINTEXT-MARKER-7731 from env-a\n')
  t.equal(reply, 'env-b:PLAINTEXT-MARKER-7731 from env-a\n', 'env-a reached env-b through the tunnel')
  await new Promise((r) => setTimeout(r, 500))
  await dump.kill('SIGINT')
  const pcap = readFileSync(capture)
  t.ok(pcap.length > 1000, `the capture at the broker holds the relayed traffic (${pcap.length} bytes)`, {
    tcpdump: dump.out(),
  })
  t.equal(pcap.indexOf('PLAINTEXT-MARKER-7731'), -1, 'and no plaintext marker')

  // The policy denies the tunnel: new connections are refused (after the pooled one goes).
  writeFileSync(
    path.join(dir, 'deny.yaml'),
    'rules:\n  - name: no-tunnel\n    action: deny\n    from: { spiffeId: "spiffe://example.org/web" }\n    to: { spiffeId: "spiffe://example.org/db" }\n',
  )
  sigil('policy', 'set', '--trust-domain', TD, '--file', path.join(dir, 'deny.yaml'))
  await until(
    'the deny rule refuses the tunnel',
    async () => ((await clientRun(client, 15432, 'x\n')) === '' ? true : undefined),
    15_000,
  )
  t.pass('the policy denied the tunnel')
  sigil('policy', 'mode', '--trust-domain', TD, 'baseline')
  writeFileSync(path.join(dir, 'allow.yaml'), 'mode: baseline\nrules: []\n')
  sigil('policy', 'set', '--trust-domain', TD, '--file', path.join(dir, 'allow.yaml'))
  await until(
    'allowed again',
    async () => ((await clientRun(client, 15432, 'y\n')) === 'env-b:y\n' ? true : undefined),
    15_000,
  )

  // Kill the broker (kill -9) and start it again: the agents reconnect and the tunnel works again.
  await broker.kill('SIGKILL')
  t.equal(
    await clientRun(client, 15432, 'while down\n').then((r) => r),
    '',
    'no tunnel while the broker is down',
  )
  const killedAt = Date.now()
  broker = startBroker()
  await until('the restarted broker', () => broker.out().includes('Sigil tunnel broker listening'), 30_000)
  const back = await until(
    'the tunnel again',
    async () => {
      const r = await clientRun(client, 15432, 'after restart\n')
      return r === 'env-b:after restart\n' ? r : undefined
    },
    30_000,
  )
  t.equal(back, 'env-b:after restart\n', 'the tunnel is back after the broker restarted')
  t.comment(`the tunnel was back ${Date.now() - killedAt} ms after the kill (restart included)`)
})
