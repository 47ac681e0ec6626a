// X509-SVID issuance end to end over HTTPS (CSR verified, SVID signed, issuance recorded in SQLite),
// against the raw single-core node:crypto P-256 signing rate measured in the same run.

import { generateKeyPairSync, sign } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import https from 'node:https'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { makeCsr } from '../test/helpers/csr.ts'
import { startServerProcess } from '../test/helpers/server-process.ts'
import { percentile } from './stats.ts'

function rawSignRate(ms = 2000): number {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const data = Buffer.alloc(300, 7)
  let n = 0
  const end = performance.now() + ms
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) sign('sha256', data, privateKey)
    n += 100
  }
  return n / (ms / 1000)
}

function post(
  agent: https.Agent,
  url: URL,
  token: string,
  body: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

export async function run(): Promise<void> {
  const raw = rawSignRate()
  console.log(
    `reference: raw node:crypto P-256 sign, one core: ${Math.round(raw).toLocaleString()} signatures/s`,
  )

  const dir = mkdtempSync(path.join(tmpdir(), 'sigil-bench-'))
  const t = {
    teardowns: [] as Array<() => unknown>,
    teardown(fn: () => unknown) {
      this.teardowns.push(fn)
    },
  }
  try {
    const server = await startServerProcess(t, { dataDir: path.join(dir, '.sigil') })
    const ca = server.caPem
    const client = server.client()
    await client.request('POST', '/v1/trust-domains', { name: 'bench.example' })
    const csrs = await Promise.all(Array.from({ length: 64 }, () => makeCsr()))
    const base = new URL('/v1/trust-domains/bench.example/svids/', server.url)

    // Latency of a single CSR per request, one connection, sequential.
    const agent1 = new https.Agent({ keepAlive: true, ca, maxSockets: 1 })
    const single = new URL('x509', base)
    const lat: number[] = []
    for (let i = 0; i < 600; i++) {
      const body = JSON.stringify({
        csr: csrs[i % csrs.length]!.pem,
        spiffeId: `spiffe://bench.example/w/${i}`,
      })
      const t0 = performance.now()
      const res = await post(agent1, single, server.token, body)
      if (res.status !== 200) throw new Error(`issuance failed: ${res.text}`)
      if (i >= 100) lat.push(performance.now() - t0)
    }
    lat.sort((a, b) => a - b)
    console.log(
      `single CSR per request: p50 ${percentile(lat, 50).toFixed(2)} ms, p99 ${percentile(lat, 99).toFixed(2)} ms (aim: p99 < 5 ms)`,
    )

    // Throughput: batches of CSRs over several keep-alive connections for a fixed time. Two runs: CSRs
    // cycling through 64 keys (renewals: the verifier's key cache hits) and 1,600 distinct keys.
    const batchSize = 200
    const connections = 4
    const agentN = new https.Agent({ keepAlive: true, ca, maxSockets: connections })
    const batchUrl = new URL('x509/batch', base)
    const fresh = await Promise.all(Array.from({ length: 8 * batchSize }, () => makeCsr()))
    for (const [label, pool] of [
      ['64 repeated keys', csrs],
      ['1,600 distinct keys', fresh],
    ] as const) {
      const bodies = Array.from({ length: 8 }, (_, b) =>
        JSON.stringify({
          requests: Array.from({ length: batchSize }, (_, i) => ({
            csr: pool[(b * batchSize + i) % pool.length]!.pem,
            spiffeId: `spiffe://bench.example/w/${i}`,
          })),
        }),
      )
      let issued = 0
      const durationMs = 6000
      const end = performance.now() + durationMs
      const started = performance.now()
      await Promise.all(
        Array.from({ length: connections }, async (_, c) => {
          let k = c
          while (performance.now() < end) {
            const res = await post(agentN, batchUrl, server.token, bodies[k++ % bodies.length]!)
            if (res.status !== 200) throw new Error(`batch failed: ${res.text.slice(0, 200)}`)
            issued += batchSize
          }
        }),
      )
      const rate = issued / ((performance.now() - started) / 1000)
      console.log(
        `throughput, ${label}: ${Math.round(rate).toLocaleString()} X509-SVIDs/s over HTTPS (batches of ${batchSize}, ${connections} connections; the load generator shares the 2 cores)`,
      )
      console.log(`  ratio to raw single-core signing: ${(rate / raw).toFixed(3)} (aim: >= 0.2)`)
    }
    agent1.destroy()
    agentN.destroy()
    client.close()
  } finally {
    for (const fn of t.teardowns.reverse()) await fn()
    rmSync(dir, { recursive: true, force: true })
  }
}
