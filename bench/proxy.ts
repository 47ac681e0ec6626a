// The data plane: two real agents (`sigil agent run --proxy-config`, child processes) carrying a local
// client's connections to a service behind the far agent, beside the same traffic sent straight to the
// service and through a pair of haproxy processes doing mTLS with the same kind of certificates (X509-SVIDs
// of the same trust domain), all measured in the same run:
//   - throughput on one long connection (upload to a sink; download from it),
//   - latency of 1 KiB echoes at a fixed 1,000 requests/s (open loop, timed from the scheduled send, so a
//     stall is counted in full rather than hidden by the client waiting: no coordinated omission), alone
//     and while another client opens new connections alongside,
//   - new connections per second (each: connect, 1 KiB out, 1 KiB back, close), beside the rate of full
//     mTLS handshakes Node's TLS stack does on this machine.
// Wall-clock rates on a shared machine move with everything else running on it, so each figure comes
// with the CPU the proxies spent on it (steadier) and with what the rest of the machine used meanwhile.
// The load generator is this process: it is not an agent, so the agent identifies it from the kernel's
// socket tables like any app (a registration entry on its executable's sha256). Prints figures; never
// fails on one.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { createHash, X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import type { ApiClient } from '../services/cli/client.ts'
import { makeCsr } from '../test/helpers/csr.ts'
import { freePort } from '../test/helpers/proxy.ts'
import { type ServerProcess, sigilBin, startServerProcess } from '../test/helpers/server-process.ts'
import { until } from '../test/helpers/wait.ts'
import { cpuSeconds, formatMemory, machineBusySeconds, memoryMiB, percentile } from './stats.ts'

export interface ProxyBenchOptions {
  /** Shorter runs and a smaller stream (a smoke run, not figures to quote). */
  quick?: boolean
  /** Bytes streamed one way for the throughput figures, MiB (default 512; 64 when quick). */
  streamMiB?: number
  /** Run the agents with --cpu-prof, writing their profiles here when they stop. */
  agentCpuProfDir?: string
}

const TD = 'bench.example'
const CLIENT_ID = `spiffe://${TD}/bench-client`
const SERVICE_ID = `spiffe://${TD}/echo`
const NODE_A = `spiffe://${TD}/sigil/agent/join_token/node-a`
const NODE_B = `spiffe://${TD}/sigil/agent/join_token/node-b`
const HOST = '127.0.0.1'
const REQ = 1024
const PAYLOAD = Buffer.alloc(REQ, 'E')
// The agent's deployed memory settings (infra/: daemonset, systemd unit, Dockerfile); SIGIL_BENCH_AGENT_NODE_OPTIONS
// tries others.
const AGENT_NODE_OPTIONS =
  process.env.SIGIL_BENCH_AGENT_NODE_OPTIONS ?? '--max-semi-space-size=2 --max-old-space-size=128'
/** Pause between the background client's connections in the latency-under-churn measurement. */
const CHURN_GAP_MS = 20

type PathName = 'direct' | 'haproxy' | 'sigil'
const PATHS: PathName[] = ['direct', 'haproxy', 'sigil']

const f2 = (n: number) => n.toFixed(2)
const f3 = (n: number) => n.toFixed(3)

// --- processes ----------------------------------------------------------------------------------------

interface Child {
  name: string
  proc: ChildProcess
  log(): string
}

function startChild(name: string, cmd: string, args: string[], env?: Record<string, string>): Child {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  let log = ''
  const append = (d: Buffer) => {
    log += d.toString()
    if (log.length > 1_000_000) log = log.slice(-500_000)
  }
  proc.stdout!.on('data', append)
  proc.stderr!.on('data', append)
  return { name, proc, log: () => log }
}

function exited(c: Child): boolean {
  return c.proc.exitCode !== null || c.proc.signalCode !== null
}

/** Waits for `check`, failing at once (with the child's output) if the child exits first. */
async function alive(
  child: Child,
  what: string,
  check: () => boolean | Promise<boolean>,
  ms = 60_000,
): Promise<void> {
  await until(
    `${child.name}: ${what}`,
    () => {
      if (exited(child))
        throw new Error(
          `${child.name} exited (${child.proc.exitCode ?? child.proc.signalCode}):\n${child.log()}`,
        )
      return check()
    },
    ms,
  )
}

/** SIGTERM (the agents close cleanly and write their --cpu-prof profiles), SIGKILL after 5 s. */
async function stopAll(children: Child[]): Promise<void> {
  const running = children.filter((c) => !exited(c))
  const exits = running.map((c) => once(c.proc, 'exit'))
  for (const c of running) c.proc.kill('SIGTERM')
  await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 5000))])
  for (const c of running) if (!exited(c)) c.proc.kill('SIGKILL')
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, HOST)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: HOST, noDelay: true })
    s.once('connect', () => {
      s.off('error', reject)
      resolve(s)
    })
    s.once('error', reject)
  })
}

/** Sockets in the kernel's TCP tables (TIME_WAIT included), which the agent reads to identify callers. */
function tcpSockets(): number {
  const lines = (table: string) =>
    readFileSync(`/proc/net/${table}`, 'latin1').trimEnd().split('\n').length - 1
  return lines('tcp') + lines('tcp6')
}

/** CPU used by some processes, this one and the rest of the machine between start and stop. */
function cpuMeter(pids: number[]) {
  const before = pids.map(cpuSeconds)
  const busy = machineBusySeconds()
  const self = process.cpuUsage()
  const t0 = performance.now()
  return () => {
    const wall = (performance.now() - t0) / 1000
    const seconds = pids.map((pid, i) => cpuSeconds(pid) - before[i]!)
    const s = process.cpuUsage(self)
    const client = (s.user + s.system) / 1e6
    const others = machineBusySeconds() - busy - client - seconds.reduce((a, b) => a + b, 0)
    return { wall, seconds, client, others: Math.max(0, others) }
  }
}

// --- the measurements ---------------------------------------------------------------------------------

/** MB/s (10^6 bytes) sending `bytes` one way to the sink, until the sink has counted them all. */
async function upload(port: number, bytes: number): Promise<number> {
  const s = await connect(port)
  const chunk = Buffer.alloc(64 * 1024, 'S')
  const answer = new Promise<string>((resolve, reject) => {
    let text = ''
    s.on('data', (d) => {
      text += d
    })
    s.once('end', () => resolve(text))
    s.once('error', reject)
  })
  const t0 = performance.now()
  for (let sent = 0; sent < bytes; ) {
    const n = Math.min(chunk.length, bytes - sent)
    sent += n
    if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await once(s, 'drain')
  }
  s.end()
  const counted = Number((await answer).trim())
  const ms = performance.now() - t0
  s.destroy()
  if (counted !== bytes) throw new Error(`the sink counted ${counted} bytes of ${bytes}`)
  return bytes / ms / 1000
}

/** MB/s receiving `bytes` from the far end on one connection. */
async function download(port: number, bytes: number): Promise<number> {
  const s = await connect(port)
  let got = 0
  const done = new Promise<void>((resolve, reject) => {
    s.on('data', (d: Buffer) => {
      got += d.length
    })
    s.once('end', () => resolve())
    s.once('error', reject)
  })
  const t0 = performance.now()
  s.write(`D${bytes}\n`)
  await done
  const ms = performance.now() - t0
  s.destroy()
  if (got !== bytes) throw new Error(`received ${got} bytes of ${bytes}`)
  return bytes / ms / 1000
}

interface Latencies {
  /** From the scheduled send (includes any delay before the send): what a caller at this rate sees. */
  scheduled: number[]
  /** From the actual write. */
  sent: number[]
  /** How late the client's timer wrote, vs the schedule (the same client on every path). */
  lateness: number[]
  lost: number
  /** New connections the background client completed meanwhile (latencyUnderChurn). */
  churned: number
}

/** 1 KiB echoes at `rate`/s spread over `connections`, open loop; the first `warmupS` are not counted. */
async function latency(
  port: number,
  connections: number,
  rate: number,
  seconds: number,
  warmupS: number,
): Promise<Latencies> {
  const socks = await Promise.all(Array.from({ length: connections }, () => connect(port)))
  const interval = 1000 / rate
  const total = Math.round(rate * (seconds + warmupS))
  const warm = Math.round(rate * warmupS)
  const queues = socks.map(() => [] as Array<{ i: number; at: number; sent: number }>)
  const received = socks.map(() => 0)
  const out: Latencies = { scheduled: [], sent: [], lateness: [], lost: 0, churned: 0 }
  let done = 0
  let allDone!: () => void
  const finished = new Promise<void>((r) => {
    allDone = r
  })
  socks.forEach((s, c) => {
    s.on('error', () => {})
    s.on('data', (d: Buffer) => {
      const now = performance.now()
      received[c]! += d.length
      while (received[c]! >= REQ) {
        received[c]! -= REQ
        const q = queues[c]!.shift()!
        if (q.i >= warm) {
          out.scheduled.push(now - q.at)
          out.sent.push(now - q.sent)
          out.lateness.push(q.sent - q.at)
        }
        if (++done === total) allDone()
      }
    })
  })
  // Timers fire at millisecond granularity: every tick sends whatever is due by then.
  const t0 = performance.now() + 5
  let next = 0
  await new Promise<void>((resolve) => {
    const tick = () => {
      let now = performance.now()
      while (next < total && t0 + next * interval <= now) {
        const c = next % connections
        queues[c]!.push({ i: next, at: t0 + next * interval, sent: now })
        socks[c]!.write(PAYLOAD)
        next++
        now = performance.now()
      }
      if (next >= total) return resolve()
      setTimeout(tick, Math.max(0, t0 + next * interval - performance.now()))
    }
    tick()
  })
  await Promise.race([finished, new Promise((r) => setTimeout(r, 10_000))])
  out.lost = total - done
  for (const s of socks) s.destroy()
  for (const a of [out.scheduled, out.sent, out.lateness]) a.sort((x, y) => x - y)
  return out
}

/** As latency(1 connection), while a second client opens short connections one after another. */
async function latencyUnderChurn(port: number, rate: number, seconds: number): Promise<Latencies> {
  let stop = false
  const churn = (async () => {
    let n = 0
    while (!stop) {
      await oneConnection(port).then(
        () => n++,
        () => {},
      )
      await new Promise((r) => setTimeout(r, CHURN_GAP_MS))
    }
    return n
  })()
  const r = await latency(port, 1, rate, seconds, 1)
  stop = true
  r.churned = await churn
  return r
}

/** One short connection: connect, send 1 KiB, read the echo, close. Resolves ms to the echo. */
function oneConnection(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    let echoed = 0
    let got = 0
    const s = net.connect({ port, host: HOST, noDelay: true })
    const timer = setTimeout(() => s.destroy(new Error('no echo within 10 s')), 10_000)
    s.once('connect', () => s.write(PAYLOAD))
    s.on('data', (d: Buffer) => {
      got += d.length
      if (got >= REQ && !echoed) {
        echoed = performance.now() - t0
        s.end()
      }
    })
    s.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    s.once('close', () => {
      clearTimeout(timer)
      if (got >= REQ) resolve(echoed)
      else reject(new Error(`closed after ${got} bytes`))
    })
  })
}

interface ConnRate {
  perSecond: number
  count: number
  errors: number
  firstError?: string
  /** Each connection's whole life (connect to close), sorted, ms. */
  life: number[]
  /** From connect to the echo, sorted, ms. */
  echo: number[]
}

/** Connections per second at `concurrency`: connect, 1 KiB out, 1 KiB echoed back, close. */
async function connectionRate(port: number, concurrency: number, seconds: number): Promise<ConnRate> {
  const r: ConnRate = { perSecond: 0, count: 0, errors: 0, life: [], echo: [] }
  const start = performance.now()
  const end = start + seconds * 1000
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now()
        try {
          r.echo.push(await oneConnection(port))
          r.count++
          r.life.push(performance.now() - t0)
        } catch (err) {
          r.errors++
          r.firstError ??= (err as Error).message
          await new Promise((res) => setTimeout(res, 10))
        }
      }
    }),
  )
  r.perSecond = (r.count / (performance.now() - start)) * 1000
  r.life.sort((a, b) => a - b)
  r.echo.sort((a, b) => a - b)
  return r
}

/** Full mTLS handshakes (no resumption) at `concurrency` against the echo process's TLS port. */
async function handshakes(
  port: number,
  context: tls.SecureContext,
  expectedServerId: string,
  concurrency: number,
  seconds: number,
): Promise<{ count: number; perSecond: number; errors: number }> {
  let count = 0
  let errors = 0
  const start = performance.now()
  const end = start + seconds * 1000
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const s = tls.connect({
        host: HOST,
        port,
        secureContext: context,
        minVersion: 'TLSv1.3',
        rejectUnauthorized: true,
        // The same check as the agents' mesh client: the far side must prove the expected SPIFFE ID.
        checkServerIdentity: (_host, cert) =>
          /(?:^|, )URI:([^,]+)/.exec(cert.subjectaltname ?? '')?.[1] === expectedServerId
            ? undefined
            : new Error('unexpected server identity'),
      })
      // As the agents' mesh sockets: no Nagle (else the server's byte after its session tickets waits
      // for a delayed ACK).
      s.setNoDelay(true)
      // The server writes a byte once it has verified our certificate: the whole handshake is done.
      s.once('data', () => {
        s.destroy()
        resolve()
      })
      s.once('error', reject)
    })
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        try {
          await one()
          count++
        } catch {
          errors++
        }
      }
    }),
  )
  return { count, errors, perSecond: (count / (performance.now() - start)) * 1000 }
}

// --- set-up -------------------------------------------------------------------------------------------

interface Svid {
  cert: string
  key: string
  /** Chain and key in one file, as haproxy's `crt` takes them. */
  both: string
  certPem: string
  keyPem: string
}

interface Topology {
  server: ServerProcess
  api: ApiClient
  echo: Child
  echoPort: number
  tlsPort: number
  agentA: Child
  agentB: Child
  haproxies: [Child, Child]
  paths: Record<PathName, { port: number; proxies: Child[] }>
  clientSvid: Svid
  bundlePem: string
  keyKind: string
}

function haproxyConfig(frontend: string, backend: string): string {
  return [
    'global',
    '  nbthread 1',
    '  maxconn 4000',
    'defaults',
    '  mode tcp',
    '  maxconn 4000',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    'frontend in',
    `  ${frontend}`,
    '  default_backend out',
    'backend out',
    `  ${backend}`,
    '',
  ].join('\n')
}

async function setUp(
  dir: string,
  t: { teardown(fn: () => unknown): void },
  children: Child[],
  opts: ProxyBenchOptions,
): Promise<Topology> {
  const server = await startServerProcess(t, { dataDir: path.join(dir, '.sigil') })
  const api = server.client()
  t.teardown(() => api.close())
  await api.request('POST', '/v1/trust-domains', { name: TD })
  const nodeSha = createHash('sha256').update(readFileSync(process.execPath)).digest('hex')
  // This process (node) is the client behind agent A; the echo service (node too) is served by agent B.
  for (const [spiffeId, parentId] of [
    [CLIENT_ID, NODE_A],
    [SERVICE_ID, NODE_B],
  ])
    await api.request('POST', `/v1/trust-domains/${TD}/entries`, {
      spiffeId,
      parentId,
      selectors: [`unix:sha256:${nodeSha}`],
    })

  // The haproxy pair and the handshake reference use SVIDs minted for the same two identities.
  const bundlePem = await api.request<string>('GET', `/v1/trust-domains/${TD}/bundle?format=pem`)
  const bundleFile = path.join(dir, 'bundle.pem')
  writeFileSync(bundleFile, bundlePem)
  const svid = async (spiffeId: string, name: string): Promise<Svid> => {
    const csr = await makeCsr()
    const minted = await api.request<{ certChainPem: string }>('POST', `/v1/trust-domains/${TD}/svids/x509`, {
      csr: csr.pem,
      spiffeId,
    })
    const files = {
      cert: path.join(dir, `${name}.crt`),
      key: path.join(dir, `${name}.key`),
      both: path.join(dir, `${name}.pem`),
    }
    writeFileSync(files.cert, minted.certChainPem)
    writeFileSync(files.key, csr.keyPem, { mode: 0o600 })
    writeFileSync(files.both, minted.certChainPem + csr.keyPem, { mode: 0o600 })
    return { ...files, certPem: minted.certChainPem, keyPem: csr.keyPem }
  }
  const clientSvid = await svid(CLIENT_ID, 'client')
  const serverSvid = await svid(SERVICE_ID, 'server')
  const leaf = new X509Certificate(clientSvid.certPem).publicKey
  const keyKind = `${leaf.asymmetricKeyType} ${leaf.asymmetricKeyDetails?.namedCurve ?? ''}`.trim()

  const echo = startChild('echo server', process.execPath, [
    '--import',
    'tsx',
    path.join(import.meta.dirname, 'proxy-echo.ts'),
    serverSvid.cert,
    serverSvid.key,
    bundleFile,
  ])
  children.push(echo)
  await alive(echo, 'listening', () => /ready \d+ \d+/.test(echo.log()))
  const [echoPort, tlsPort] = /ready (\d+) (\d+)/.exec(echo.log())!.slice(1).map(Number) as [number, number]

  // Fixed ports chosen beforehand, so the proxy configurations are complete before anything starts.
  const meshPort = await freePort()
  const upstreamPort = await freePort()
  const haFront = await freePort()
  const haMesh = await freePort()
  const caFile = path.join(dir, 'server-ca.pem')
  writeFileSync(caFile, server.caPem)
  const startAgent = async (name: string, id: string, proxyYaml: string[]): Promise<Child> => {
    const { token } = await api.request<{ token: string }>('POST', `/v1/trust-domains/${TD}/join-tokens`, {
      spiffeId: id,
    })
    const config = path.join(dir, `${name.replace(' ', '-')}-proxy.yaml`)
    writeFileSync(config, `${proxyYaml.join('\n')}\n`)
    // Not test/helpers/agent-process.ts: --cpu-prof is refused in NODE_OPTIONS, so it goes on node's
    // own command line, before the script.
    const prof = opts.agentCpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', opts.agentCpuProfDir] : []
    const child = startChild(
      name,
      process.execPath,
      [
        ...prof,
        sigilBin,
        '--server',
        server.url,
        'agent',
        'run',
        '--trust-domain',
        TD,
        '--trust-bundle',
        caFile,
        '--join-token',
        token,
        '--socket',
        path.join(dir, `${name.replace(' ', '-')}.sock`),
        '--proxy-config',
        config,
      ],
      { NODE_OPTIONS: AGENT_NODE_OPTIONS },
    )
    children.push(child)
    return child
  }
  const agentB = await startAgent('agent B', NODE_B, [
    'mesh:',
    `  listen: ${HOST}:${meshPort}`,
    'services:',
    '  - name: echo',
    `    spiffeId: ${SERVICE_ID}`,
    `    forward: ${HOST}:${echoPort}`,
  ])
  const agentA = await startAgent('agent A', NODE_A, [
    'upstreams:',
    '  - name: echo',
    `    listen: ${HOST}:${upstreamPort}`,
    `    spiffeId: ${SERVICE_ID}`,
    `    agent: ${HOST}:${meshPort}`,
  ])
  for (const a of [agentA, agentB]) {
    await alive(a, 'proxy listening', () => a.log().includes('Sigil agent proxy listening'))
    await alive(a, 'holding its SVID', () => /"svids":1,/.test(a.log()))
  }

  // haproxy verifies the chain against the bundle (it has no SPIFFE ID check; the agents also check
  // the ID, a string comparison).
  const verify = `ca-file ${bundleFile} verify required ssl-min-ver TLSv1.3`
  const haproxy = (name: string, frontend: string, backend: string, port: number) => {
    const file = path.join(dir, `${name.replace(' ', '-')}.cfg`)
    writeFileSync(file, haproxyConfig(frontend, backend))
    const child = startChild(name, '/usr/sbin/haproxy', ['-db', '-f', file])
    children.push(child)
    return { child, port }
  }
  const haA = haproxy(
    'haproxy A',
    `bind ${HOST}:${haFront}`,
    `server b ${HOST}:${haMesh} ssl crt ${clientSvid.both} ${verify}`,
    haFront,
  )
  const haB = haproxy(
    'haproxy B',
    `bind ${HOST}:${haMesh} ssl crt ${serverSvid.both} ${verify}`,
    `server echo ${HOST}:${echoPort}`,
    haMesh,
  )
  for (const h of [haA, haB]) await alive(h.child, 'listening', () => canConnect(h.port), 20_000)

  return {
    server,
    api,
    echo,
    echoPort,
    tlsPort,
    agentA,
    agentB,
    haproxies: [haA.child, haB.child],
    paths: {
      direct: { port: echoPort, proxies: [] },
      haproxy: { port: haFront, proxies: [haA.child, haB.child] },
      sigil: { port: upstreamPort, proxies: [agentA, agentB] },
    },
    clientSvid,
    bundlePem,
    keyKind,
  }
}

function haproxyVersion(): string {
  try {
    const out = execFileSync('/usr/sbin/haproxy', ['-v'], { encoding: 'utf8' })
    return /version (\S+)/.exec(out)?.[1] ?? '?'
  } catch {
    return '?'
  }
}

// --- the run ------------------------------------------------------------------------------------------

interface Measured<T> {
  r: T
  /** Sockets in the kernel's TCP tables when the measurement started. */
  sockets: number
  /** CPU-seconds the path's two proxies used during it (0 for direct). */
  proxyCpu: number
}

type ByPath<T> = Record<PathName, Measured<T>>

export async function run(opts: ProxyBenchOptions = {}): Promise<void> {
  const quick = opts.quick ?? false
  const streamBytes = (opts.streamMiB ?? (quick ? 64 : 512)) * 1024 * 1024
  const latencySeconds = quick ? 3 : 10
  const connSeconds = quick ? 2 : 5
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sigil-bench-proxy-'))
  const teardowns: Array<() => unknown> = []
  const t = { teardown: (fn: () => unknown) => teardowns.push(fn) }
  const children: Child[] = []
  let cleaned = false
  const cleanup = async () => {
    if (cleaned) return
    cleaned = true
    await stopAll(children)
    for (const fn of teardowns.reverse()) await fn()
    rmSync(dir, { recursive: true, force: true })
  }
  const onSignal = (signal: NodeJS.Signals) => {
    void cleanup().finally(() => process.kill(process.pid, signal))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const topo = await setUp(dir, t, children, opts)
    const load0 = os.loadavg()[0]!
    console.log(
      `set-up: 2 agents (sigil agent run, NODE_OPTIONS="${AGENT_NODE_OPTIONS}"); 2 haproxy ${haproxyVersion()} ` +
        '(nbthread 1 each, as the agents are single-threaded; mode tcp, TLS 1.3, its default server-side ' +
        `session reuse); X509-SVIDs with ${topo.keyKind} keys; one echo/sink process; this process is the ` +
        `client; ${os.cpus().length} CPUs, load average ${f2(load0)}${quick ? '; QUICK run' : ''}`,
    )

    // Warm up every path (the agents' mesh connection, JIT, the agents' sha256 cache) and check it echoes.
    for (const name of PATHS) {
      for (let i = 0; i < 50; i++) await oneConnection(topo.paths[name].port)
      await latency(topo.paths[name].port, 1, 1000, 0.5, 0)
    }

    const cpuLines: string[] = []
    const others = [topo.echo, { name: 'trust service', proc: topo.server.proc }]
    const each = async <T>(
      what: string,
      fn: (port: number) => Promise<T>,
      order: PathName[] = PATHS,
    ): Promise<ByPath<T>> => {
      const out = {} as ByPath<T>
      for (const name of order) {
        const { port, proxies } = topo.paths[name]
        const watched = [...proxies, ...others]
        const sockets = tcpSockets()
        const stop = cpuMeter(watched.map((c) => c.proc.pid!))
        const r = await fn(port)
        const u = stop()
        const cores = (s: number) => f2(s / u.wall)
        const parts = watched.map((c, i) => `${c.name} ${cores(u.seconds[i]!)}`)
        parts.push(`client ${cores(u.client)}`, `everything else ${cores(u.others)}`)
        cpuLines.push(`  ${what.padEnd(26)} ${name.padEnd(8)} ${parts.join(', ')}`)
        const proxyCpu = u.seconds.slice(0, proxies.length).reduce((a, b) => a + b, 0)
        out[name] = { r, sockets, proxyCpu }
        await new Promise((res) => setTimeout(res, 500))
      }
      return out
    }

    const up = await each('upload', (port) => upload(port, streamBytes))
    const down = await each('download', (port) => download(port, streamBytes))
    const lat1 = await each('latency 1 x 1000/s', (port) => latency(port, 1, 1000, latencySeconds, 1))
    const lat10 = await each('latency 10 x 100/s', (port) => latency(port, 10, 1000, latencySeconds, 1))
    const churn = await each('latency, conns alongside', (port) =>
      latencyUnderChurn(port, 1000, latencySeconds),
    )
    // Every closed connection leaves a TIME_WAIT socket in the kernel's table for 60 s, and the agent
    // reads that table to identify each caller: sigil goes first, with its own only, then again after
    // the others have filled the table.
    const conns = await each('new connections c=32', (port) => connectionRate(port, 32, connSeconds), [
      'sigil',
      'haproxy',
      'direct',
    ])
    const connsAgain = await each('new connections, again', (port) => connectionRate(port, 32, connSeconds), [
      'sigil',
    ])

    // Reference: Node's full mTLS handshakes with the same SVIDs, this process to the echo process.
    const ctx = tls.createSecureContext({
      cert: topo.clientSvid.certPem,
      key: topo.clientSvid.keyPem,
      ca: topo.bundlePem,
      minVersion: 'TLSv1.3',
    })
    await handshakes(topo.tlsPort, ctx, SERVICE_ID, 8, 0.5)
    const stopHs = cpuMeter([topo.echo.proc.pid!])
    const hs = await handshakes(topo.tlsPort, ctx, SERVICE_ID, 8, quick ? 1 : 3)
    const hsCpu = stopHs()

    // The flows were identified and allowed (else the figures would be of another path).
    const recent = await topo.api.request<{
      flows: Array<{ verdict: string; source: { spiffeId?: string } }>
    }>('GET', `/v1/trust-domains/${TD}/flows?limit=1000&side=egress`)
    const asClient = recent.flows.filter((f) => f.verdict === 'allowed' && f.source.spiffeId === CLIENT_ID)

    // --- the report ---
    const table: string[][] = [['', 'direct', 'haproxy', 'sigil', 'sigil vs reference']]
    const row = (label: string, v: Partial<Record<PathName, string>>, note = '') =>
      table.push([label, v.direct ?? '', v.haproxy ?? '', v.sigil ?? '', note])
    const by = <T>(m: ByPath<T>, fn: (x: T) => string): Record<PathName, string> => ({
      direct: fn(m.direct.r),
      haproxy: fn(m.haproxy.r),
      sigil: fn(m.sigil.r),
    })
    // CPU the proxy pair spent per unit of work: steadier than wall-clock rates on a busy machine.
    const cpuRow = (label: string, per: (n: PathName) => number) =>
      row(
        label,
        { direct: '-', haproxy: f2(per('haproxy')), sigil: f2(per('sigil')) },
        `${f2(per('sigil') / per('haproxy'))}x haproxy's`,
      )

    const mib = streamBytes / 1024 / 1024
    for (const [label, m, aim] of [
      ['upload', up, ' (aim >= 0.8)'],
      ['download', down, ''],
    ] as const) {
      row(
        `${label} ${mib} MiB, 1 conn (MB/s)`,
        by(m, (x) => x.toFixed(0)),
        `${f2(m.sigil.r / m.haproxy.r)}x haproxy${aim}`,
      )
      cpuRow('  proxy pair CPU-s per GB', (n) => (m[n].proxyCpu / streamBytes) * 1e9)
    }
    const requests = (latencySeconds + 1) * 1000
    for (const [label, m] of [
      ['1 conn x 1000/s', lat1],
      ['10 conns x 100/s', lat10],
      ['1 conn x 1000/s, conns alongside', churn],
    ] as const) {
      for (const p of [50, 90, 99]) {
        const added = (n: PathName) => percentile(m[n].r.scheduled, p) - percentile(m.direct.r.scheduled, p)
        row(
          `1 KiB echo ${label}, p${p} (ms)`,
          by(m, (x) => f3(percentile(x.scheduled, p))),
          `added ${f3(added('sigil'))} ms; haproxy ${f3(added('haproxy'))}${p === 99 ? ' (aim <= 0.5)' : ''}`,
        )
      }
      cpuRow('  proxy pair CPU-ms per 1,000 requests', (n) => (m[n].proxyCpu / requests) * 1e6)
      if (m === churn)
        row(
          '  new connections alongside',
          by(m, (x) => String(x.churned)),
        )
      const lost = by(m, (x) => String(x.lost))
      if (PATHS.some((n) => lost[n] !== '0')) row('  unanswered', lost)
    }
    row(
      'new connections/s (c=32, 1 KiB echo)',
      by(conns, (x) => x.perSecond.toFixed(0)),
      `${f2(conns.sigil.r.perSecond / hs.perSecond)}x Node's handshake rate; ` +
        `${f2(conns.sigil.r.perSecond / conns.haproxy.r.perSecond)}x haproxy`,
    )
    cpuRow('  proxy pair CPU-ms per connection', (n) => (conns[n].proxyCpu / conns[n].r.count) * 1000)
    row(
      '  connect to echo p50/p99 (ms)',
      by(conns, (x) => `${f2(percentile(x.echo, 50))}/${f2(percentile(x.echo, 99))}`),
    )
    row(
      '  connect to close p50/p99 (ms)',
      by(conns, (x) => `${f2(percentile(x.life, 50))}/${f2(percentile(x.life, 99))}`),
    )
    const errs = by(conns, (x) => (x.errors ? `${x.errors} (${x.firstError})` : '0'))
    if (PATHS.some((n) => errs[n] !== '0')) row('  failed connections', errs)
    row('  kernel TCP table at start (sockets)', {
      direct: String(conns.direct.sockets),
      haproxy: String(conns.haproxy.sockets),
      sigil: String(conns.sigil.sockets),
    })
    const again = connsAgain.sigil
    row(
      `  sigil again, table at ${again.sockets} sockets`,
      { sigil: again.r.perSecond.toFixed(0) },
      `${f2((again.proxyCpu / again.r.count) * 1000)} CPU-ms per connection; ` +
        `connect to echo p50 ${f2(percentile(again.r.echo, 50))} ms` +
        (again.r.errors ? `; ${again.r.errors} failed (${again.r.firstError})` : ''),
    )
    const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)))
    for (const r of table)
      console.log(
        r
          .map((c, i) => (i === 0 || i === 4 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
          .join('  ')
          .trimEnd(),
      )

    console.log(
      `reference: Node ${process.version} full mTLS handshakes (TLS 1.3, same SVIDs, no resumption, ` +
        `concurrency 8, this process to the echo process): ${hs.perSecond.toFixed(0)}/s (${hs.errors} failed); ` +
        `per core-second ${(hs.count / hsCpu.seconds[0]!).toFixed(0)} on the server end, ` +
        `${(hs.count / hsCpu.client).toFixed(0)} on the client end; everything else used ` +
        `${f2(hsCpu.others / hsCpu.wall)} cores meanwhile`,
    )
    console.log(
      'reference: a ztunnel pair (Istio) adds ~0.17 ms at p90 and ~0.20 ms at p99 for 1 KB at 1,000 req/s ' +
        '(its published figures, not this machine)',
    )
    const late = lat1.direct.r.lateness
    console.log(
      `client timer: writes late vs the schedule by p50 ${f3(percentile(late, 50))} ms, p99 ${f3(percentile(late, 99))} ms ` +
        `on every path alike; "added" is each percentile minus direct's`,
    )
    const fromWrite = (m: ByPath<Latencies>) =>
      PATHS.map((n) => `${n} ${f3(percentile(m[n].r.sent, 50))}/${f3(percentile(m[n].r.sent, 99))}`).join(
        ', ',
      )
    console.log(`timed from the actual write, p50/p99 ms: 1 conn x 1000/s: ${fromWrite(lat1)}`)
    console.log(`  with new connections alongside: ${fromWrite(churn)}`)
    console.log('CPU used during each measurement (cores: CPU-seconds per wall-second):')
    for (const l of cpuLines) console.log(l)
    console.log(
      `identity: ${asClient.length} of the last ${recent.flows.length} egress flows agent A reported were ` +
        `allowed as ${CLIENT_ID}`,
    )
    const rss = (c: Child) => `${c.name} ${formatMemory(memoryMiB(c.proc.pid!))}`
    console.log(
      `RSS at the end: ${[topo.agentA, topo.agentB, ...topo.haproxies].map(rss).join(', ')}; ` +
        `load average ${f2(load0)} at the start, ${f2(os.loadavg()[0]!)} at the end`,
    )
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await cleanup()
  }
}
