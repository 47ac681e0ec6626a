// The real agent (`sigil agent run`) serving 1,000 registered workloads: its resident memory beside an
// idle Node.js process of the same runtime, and cached FetchX509SVID latency over the Workload API
// beside a plain Unix-socket round trip to another process, both measured in the same run.

import { type ChildProcess, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { WorkloadApiClient } from '../agents/workload-api/client.ts'
import { startAgentProcess } from '../test/helpers/agent-process.ts'
import { startServerProcess } from '../test/helpers/server-process.ts'
import { until } from '../test/helpers/wait.ts'
import { formatMemory, memoryMiB, percentile } from './stats.ts'

const WORKLOADS = 1000
// The agent's deployed memory settings (infra/: daemonset, systemd unit, Dockerfile); SIGIL_BENCH_AGENT_NODE_OPTIONS
// tries others.
const AGENT_NODE_OPTIONS =
  process.env.SIGIL_BENCH_AGENT_NODE_OPTIONS ?? '--max-semi-space-size=2 --max-old-space-size=128'

export async function run(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sigil-bench-'))
  const t = {
    fns: [] as Array<() => unknown>,
    teardown(fn: () => unknown) {
      this.fns.push(fn)
    },
  }
  const children: ChildProcess[] = []
  try {
    const server = await startServerProcess(t, { dataDir: path.join(dir, '.sigil') })
    const api = server.client()
    await api.request('POST', '/v1/trust-domains', { name: 'bench.example' })
    const agentId = 'spiffe://bench.example/sigil/agent/join_token/bench'
    const nodeSha = createHash('sha256').update(readFileSync(process.execPath)).digest('hex')
    const uid = process.getuid!()
    let next = 0
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < WORKLOADS) {
          const i = next++
          const selectors =
            i === 0 ? [`unix:uid:${uid}`, `unix:sha256:${nodeSha}`] : [`unix:uid:${100_000 + i}`]
          await api.request('POST', '/v1/trust-domains/bench.example/entries', {
            spiffeId: `spiffe://bench.example/w/${i}`,
            parentId: agentId,
            selectors,
          })
        }
      }),
    )
    const { token } = await api.request<{ token: string }>(
      'POST',
      '/v1/trust-domains/bench.example/join-tokens',
      {
        spiffeId: agentId,
      },
    )
    api.close()
    // The agent's documented memory settings (infra/ and docs/AGENT.md): a small young generation.
    const agentProcess = startAgentProcess({
      serverUrl: server.url,
      caPem: server.caPem,
      trustDomain: 'bench.example',
      joinToken: token,
      dir,
      socket: path.join(dir, 'agent.sock'),
      env: { NODE_OPTIONS: AGENT_NODE_OPTIONS },
    })
    const agent = agentProcess.proc
    const socket = agentProcess.socket
    children.push(agent)
    const log = () => agentProcess.log()
    const started = performance.now()
    await until(
      `${WORKLOADS} SVIDs in the agent`,
      () => new RegExp(`"svids":${WORKLOADS},`).test(log()),
      120_000,
    )
    console.log(
      `agent: attested and holding ${WORKLOADS} X509-SVIDs after ${((performance.now() - started) / 1000).toFixed(1)} s`,
    )

    // Reference: an idle process of the same runtime with the same memory settings.
    const idle = spawn(
      process.execPath,
      [...AGENT_NODE_OPTIONS.split(' '), '-e', 'setInterval(() => {}, 1000)'],
      {
        stdio: 'ignore',
      },
    )
    children.push(idle)
    await new Promise((r) => setTimeout(r, 3000))
    console.log(`reference: idle node: ${formatMemory(memoryMiB(idle.pid!))}`)
    console.log(
      `agent with ${WORKLOADS} workloads: ${formatMemory(memoryMiB(agent.pid!))} (aim: <= 60 MiB; SPIRE's agent: 39-60 MiB with ~70 pods)`,
    )

    // Reference: a Unix-socket round trip to another process.
    const echoPath = path.join(dir, 'echo.sock')
    const echo = spawn(
      process.execPath,
      [
        '-e',
        `require('net').createServer((s) => s.pipe(s)).listen(${JSON.stringify(echoPath)}, () => console.log('up'))`,
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    )
    children.push(echo)
    await new Promise((r) => echo.stdout!.once('data', r))
    const conn = net.connect(echoPath)
    await new Promise((r) => conn.once('connect', r))
    const rt: number[] = []
    for (let i = 0; i < 2000; i++) {
      const t0 = performance.now()
      await new Promise((r) => {
        conn.once('data', r)
        conn.write('x'.repeat(1024))
      })
      if (i >= 200) rt.push(performance.now() - t0)
    }
    conn.destroy()
    rt.sort((a, b) => a - b)

    const client = new WorkloadApiClient(socket)
    const lat: number[] = []
    for (let i = 0; i < 900; i++) {
      const t0 = performance.now()
      const res = await client.fetchX509Svid()
      if (res.svids.length !== 1) throw new Error('expected exactly one SVID for this process')
      if (i >= 100) lat.push(performance.now() - t0)
    }
    client.close()
    lat.sort((a, b) => a - b)
    console.log(
      `reference: 1 KiB Unix-socket round trip to another process: p50 ${percentile(rt, 50).toFixed(3)} ms, p99 ${percentile(rt, 99).toFixed(3)} ms`,
    )
    console.log(
      `cached FetchX509SVID (grpc-js client, attestation with cached sha256 on every call): p50 ${percentile(lat, 50).toFixed(2)} ms, p99 ${percentile(lat, 99).toFixed(2)} ms (aim: p99 < 2 ms)`,
    )
  } finally {
    for (const c of children) c.kill('SIGKILL')
    for (const fn of t.fns.reverse()) await fn()
    rmSync(dir, { recursive: true, force: true })
  }
}
