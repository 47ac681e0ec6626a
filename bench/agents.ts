// Agents against one trust service: 1,000 agents renewing at once (beside 1,000 plain TLS handshakes to
// the same server, measured in the same run), and entry change -> agent cache propagation.

import { mkdtempSync, rmSync } from 'node:fs'
import https from 'node:https'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Agent } from '../agents/daemon/agent.ts'
import { keyAndCsr, toPem } from '../agents/daemon/keys.ts'
import { startServerProcess } from '../test/helpers/server-process.ts'
import { percentile } from './stats.ts'

const AGENTS = 1000

function request(
  url: URL,
  opts: { method: string; ca: string; cert?: string; key?: string; body?: unknown },
): Promise<{ status: number; body: any }> {
  const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body))
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: opts.method,
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        agent: false,
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString()
          resolve({ status: res.statusCode ?? 0, body: text.startsWith('{') ? JSON.parse(text) : text })
        })
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

async function pool<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n)
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++
        out[i] = await fn(i)
      }
    }),
  )
  return out
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sigil-bench-'))
  const t = {
    fns: [] as Array<() => unknown>,
    teardown(fn: () => unknown) {
      this.fns.push(fn)
    },
  }
  try {
    const server = await startServerProcess(t, { dataDir: path.join(dir, '.sigil') })
    const api = server.client()
    const ca = server.caPem
    await api.request('POST', '/v1/trust-domains', { name: 'bench.example' })

    // Attest AGENTS agents with join tokens.
    const agents = await pool(AGENTS, 32, async (i) => {
      const { token } = await api.request<{ token: string }>(
        'POST',
        '/v1/trust-domains/bench.example/join-tokens',
        {
          spiffeId: `spiffe://bench.example/sigil/agent/bench/${i}`,
        },
      )
      const { privateKey, csrDer } = await keyAndCsr()
      const res = await request(new URL('/v1/agent/attest', server.url), {
        method: 'POST',
        ca,
        body: {
          trustDomain: 'bench.example',
          attestor: 'join_token',
          evidence: { token },
          csr: csrDer.toString('base64'),
        },
      })
      if (res.status !== 200) throw new Error(`attestation failed: ${JSON.stringify(res.body)}`)
      return {
        cert: (res.body.certChain as string[])
          .map((c) => toPem(Buffer.from(c, 'base64'), 'CERTIFICATE'))
          .join(''),
        key: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      }
    })

    // Reference: AGENTS plain TLS handshakes + GET /healthz, all at once.
    const refStart = performance.now()
    await Promise.all(
      Array.from({ length: AGENTS }, () => request(new URL('/healthz', server.url), { method: 'GET', ca })),
    )
    const refMs = performance.now() - refStart

    // AGENTS agents renewing at once: a new mTLS connection each, CSR verified, SVID signed, CAS in the store.
    const csrs = await Promise.all(agents.map(() => keyAndCsr()))
    const lat: number[] = []
    let failures = 0
    const start = performance.now()
    await Promise.all(
      agents.map(async (a, i) => {
        const t0 = performance.now()
        const res = await request(new URL('/v1/agent/renew', server.url), {
          method: 'POST',
          ca,
          cert: a.cert,
          key: a.key,
          body: { csr: csrs[i]!.csrDer.toString('base64') },
        }).catch(() => ({ status: 0, body: undefined }))
        lat.push(performance.now() - t0)
        if (res.status !== 200) failures++
      }),
    )
    const totalMs = performance.now() - start
    lat.sort((a, b) => a - b)
    console.log(`reference: ${AGENTS} plain TLS connections + GET /healthz at once: ${refMs.toFixed(0)} ms`)
    console.log(
      `${AGENTS} agents renewing at once (mTLS + CSR + signing + store): ${totalMs.toFixed(0)} ms, ${failures} failed, ` +
        `p50 ${percentile(lat, 50).toFixed(0)} ms, p99 ${percentile(lat, 99).toFixed(0)} ms (${((AGENTS / totalMs) * 1000).toFixed(0)} renewals/s)`,
    )

    // Entry change -> the agent's cache holds an SVID for it (SPIRE: up to ~10 s).
    const { token } = await api.request<{ token: string }>(
      'POST',
      '/v1/trust-domains/bench.example/join-tokens',
      {
        spiffeId: 'spiffe://bench.example/sigil/agent/bench/live',
      },
    )
    const quiet = { info() {}, warn() {}, error() {} }
    const agent = new Agent({
      server: new URL(server.url),
      trustDomain: 'bench.example',
      trustBundlePem: ca,
      attestor: { name: 'join_token', evidence: async () => ({ token }) },
      log: quiet,
    })
    t.teardown(() => agent.close())
    await agent.start()
    await agent.whenSynced()
    const prop: number[] = []
    for (let i = 0; i < 60; i++) {
      const selector = { type: 'unix', value: `uid:${10_000 + i}` }
      const t0 = performance.now()
      await api.request('POST', '/v1/trust-domains/bench.example/entries', {
        spiffeId: `spiffe://bench.example/w/${i}`,
        parentId: 'spiffe://bench.example/sigil/agent/bench/live',
        selectors: [`unix:uid:${10_000 + i}`],
      })
      for (;;) {
        if (agent.cache.x509Svids([selector]).length) break
        if (performance.now() - t0 > 10_000) throw new Error('entry never reached the agent')
        await new Promise((r) => setImmediate(r))
      }
      prop.push(performance.now() - t0)
    }
    prop.sort((a, b) => a - b)
    console.log(
      `entry change -> SVID in the agent's cache: p50 ${percentile(prop, 50).toFixed(1)} ms, p99 ${percentile(prop, 99).toFixed(1)} ms ` +
        '(aim: p99 < 1 s; SPIRE: up to ~10 s by its cache reload and sync intervals)',
    )
    api.close()
  } finally {
    for (const fn of t.fns.reverse()) await fn()
    rmSync(dir, { recursive: true, force: true })
  }
}
