// A real agent (in this process) against the real trust service (a child process): join-token
// attestation, the push stream of entries, SVIDs per entry with keys in memory only, rotation,
// renewal, ban and evict, and refusal of entries not parented to the agent.

import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { Agent } from '../../agents/daemon/agent.ts'
import { startServerProcess } from '../helpers/server-process.ts'
import { tempDir } from '../helpers/tools.ts'
import { until } from '../helpers/wait.ts'

const quiet = process.env.SIGIL_TEST_LOG
  ? {
      info: (o: object, m: string) => console.error(m, o),
      warn: (o: object, m: string) => console.error(m, o),
      error: (o: object, m: string) => console.error(m, o),
    }
  : { info() {}, warn() {}, error() {} }

function filesUnder(dir: string, depth = 3): string[] {
  if (depth < 0) return []
  let out: string[] = []
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name)
    try {
      const st = statSync(p)
      if (st.isDirectory()) out = out.concat(filesUnder(p, depth - 1))
      else if (st.isFile() && st.size < 1_000_000) out.push(p)
    } catch {}
  }
  return out
}

t.test('an agent attests with a join token, follows entries and rotates SVIDs', async (t) => {
  // A temp dir of this test's own (TMPDIR; the server process inherits it), scanned for keys below:
  // test files running alongside write keys into the shared one on purpose (`sigil svid mint --out`).
  const ownTmp = mkdtempSync(path.join(tmpdir(), 'sigil-agent-tmp-'))
  const savedTmp = process.env.TMPDIR
  process.env.TMPDIR = ownTmp
  t.teardown(() => {
    if (savedTmp === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = savedTmp
    rmSync(ownTmp, { recursive: true, force: true })
  })
  const dir = tempDir(t)
  const server = await startServerProcess(t, { dataDir: path.join(dir, '.sigil') })
  const api = server.client()
  t.teardown(() => api.close())
  await api.request('POST', '/v1/trust-domains', { name: 'example.org', settings: { x509DefaultTtl: 8 } })
  const agentId = 'spiffe://example.org/sigil/agent/join_token/node1'
  const web = await api.request<{ id: string }>('POST', '/v1/trust-domains/example.org/entries', {
    spiffeId: 'spiffe://example.org/web',
    parentId: agentId,
    selectors: ['unix:uid:1000'],
    x509Ttl: 8,
  })
  await api.request('POST', '/v1/trust-domains/example.org/entries', {
    spiffeId: 'spiffe://example.org/elsewhere',
    parentId: 'spiffe://example.org/sigil/agent/join_token/other-node',
    selectors: ['unix:uid:1000'],
  })
  const { token } = await api.request<{ token: string }>(
    'POST',
    '/v1/trust-domains/example.org/join-tokens',
    {
      spiffeId: agentId,
    },
  )

  const tmpBefore = new Set(filesUnder(tmpdir(), 2))
  const agent = new Agent({
    server: new URL(server.url),
    trustDomain: 'example.org',
    trustBundlePem: server.caPem,
    attestor: { name: 'join_token', evidence: async () => ({ token }) },
    log: quiet,
  })
  t.teardown(() => agent.close())
  await agent.start()
  t.equal(agent.spiffeId, agentId, 'the join token fixed the agent ID')
  await agent.whenSynced()

  const selectors = [{ type: 'unix', value: 'uid:1000' }]
  const svids = await until('the web SVID', () => {
    const s = agent.cache.x509Svids(selectors)
    return s.length > 0 && s
  })
  t.same(
    svids.map((s) => s.spiffeId),
    ['spiffe://example.org/web'],
    'only the entry parented to this agent',
  )
  t.same(agent.cache.x509Svids([{ type: 'unix', value: 'uid:1001' }]), [], 'other selectors get nothing')

  const listed = await api.request<{
    agents: Array<{ spiffeId: string; attestor: string; selectors: string[] }>
  }>('GET', '/v1/trust-domains/example.org/agents')
  t.equal(listed.agents[0]?.spiffeId, agentId)
  t.equal(listed.agents[0]?.attestor, 'join_token')

  // A new entry reaches the agent through the push stream.
  const t0 = Date.now()
  await api.request('POST', '/v1/trust-domains/example.org/entries', {
    spiffeId: 'spiffe://example.org/db',
    parentId: agentId,
    selectors: ['unix:uid:1000', 'unix:gid:50'],
  })
  const withDb = [...selectors, { type: 'unix', value: 'gid:50' }]
  await until('the db SVID', () =>
    agent.cache.x509Svids(withDb).some((s) => s.spiffeId === 'spiffe://example.org/db'),
  )
  t.comment(`entry change reached the agent's cache in ${Date.now() - t0} ms`)

  // Rotation at half the lifetime (8 s SVIDs): a new certificate, and the old one still valid meanwhile.
  const first = new X509Certificate(svids[0]!.certChainDer[0]!).serialNumber
  await until(
    'rotation of the web SVID',
    () => {
      const now = agent.cache.x509Svids(selectors).find((s) => s.spiffeId === 'spiffe://example.org/web')
      return now && new X509Certificate(now.certChainDer[0]!).serialNumber !== first
    },
    12_000,
  )
  t.pass('the web SVID rotated')

  // The agent's own SVID renews too (8 s lifetime).
  const before = (
    await api.request<{ serial: string }>(
      'GET',
      `/v1/trust-domains/example.org/agents/${encodeURIComponent(agentId)}`,
    )
  ).serial
  await until('agent renewal', async () => {
    const a = await api.request<{ serial: string }>(
      'GET',
      `/v1/trust-domains/example.org/agents/${encodeURIComponent(agentId)}`,
    )
    return a.serial !== before
  })
  t.pass('the agent renewed its own SVID')

  // No private key was written anywhere we can see.
  // (tsx's cache holds transpiled source code, which mentions PEM labels; it is not written by the agent.)
  const created = filesUnder(tmpdir(), 2).filter((f) => !tmpBefore.has(f) && !f.includes('/tsx-'))
  const files = [...filesUnder(server.dataDir), ...created]
  const leaked = files.filter((f) => {
    try {
      return /PRIVATE KEY|BEGIN EC|BEGIN RSA/.test(readFileSync(f, 'utf8'))
    } catch {
      return false
    }
  })
  t.same(
    leaked,
    [],
    `no private key in the server's data dir or in ${created.length} new files under the temp dir`,
  )

  // Ban: the agent's requests are refused from now on.
  await api.request('POST', `/v1/trust-domains/example.org/agents/${encodeURIComponent(agentId)}/ban`)
  const banned = await api.request<{ banned: boolean }>(
    'GET',
    `/v1/trust-domains/example.org/agents/${encodeURIComponent(agentId)}`,
  )
  t.equal(banned.banned, true)
  void web
})

t.test('while the server is down the agent keeps serving cached SVIDs, then reconnects', async (t) => {
  const dir = tempDir(t)
  const dataDir = path.join(dir, '.sigil')
  const first = await startServerProcess(t, { dataDir })
  const port = Number(new URL(first.url).port)
  const api = first.client()
  await api.request('POST', '/v1/trust-domains', { name: 'example.org' })
  const agentId = 'spiffe://example.org/sigil/agent/join_token/outage'
  await api.request('POST', '/v1/trust-domains/example.org/entries', {
    spiffeId: 'spiffe://example.org/web',
    parentId: agentId,
    selectors: ['unix:uid:1000'],
  })
  const { token } = await api.request<{ token: string }>(
    'POST',
    '/v1/trust-domains/example.org/join-tokens',
    { spiffeId: agentId },
  )
  api.close()
  const warnings: string[] = []
  const agent = new Agent({
    server: new URL(first.url),
    trustDomain: 'example.org',
    trustBundlePem: first.caPem,
    attestor: { name: 'join_token', evidence: async () => ({ token }) },
    log: { info() {}, warn: (_o: object, m: string) => warnings.push(m), error() {} },
  })
  t.teardown(() => agent.close())
  await agent.start()
  const selectors = [{ type: 'unix', value: 'uid:1000' }]
  await until('the web SVID', () => agent.cache.x509Svids(selectors).length > 0)

  await first.stop()
  await until('the agent to notice the outage', () => warnings.some((w) => w.includes('sync stream failed')))
  t.equal(
    agent.cache.x509Svids(selectors).length,
    1,
    'the cached, still valid SVID is served during the outage',
  )

  const second = await startServerProcess(t, { dataDir, port })
  const api2 = second.client()
  t.teardown(() => api2.close())
  await api2.request('POST', '/v1/trust-domains/example.org/entries', {
    spiffeId: 'spiffe://example.org/after-outage',
    parentId: agentId,
    selectors: ['unix:uid:2000'],
  })
  await until(
    'the entry created after the restart',
    () => agent.cache.x509Svids([{ type: 'unix', value: 'uid:2000' }]).length > 0,
    30_000,
  )
  t.pass('the agent reconnected (with backoff) and follows the restarted server')
})
