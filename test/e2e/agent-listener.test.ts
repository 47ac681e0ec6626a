// --agent-listen: agents get a listener of their own, and the main listener (API and console) then
// requests no client certificate, so a browser never offers a certificate picker. Real server, real
// openssl, a real agent.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'
import t from 'tap'
import { Agent } from '../../agents/daemon/agent.ts'
import { startServerProcess } from '../helpers/server-process.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'
import { until } from '../helpers/wait.ts'

const quiet = { info() {}, warn() {}, error() {} }

/** Whether the server sent a CertificateRequest, as openssl s_client reports it (TLS 1.3 and 1.2). */
async function asksForClientCert(url: string): Promise<{ asks: boolean; out: string }> {
  const child = spawn('openssl', ['s_client', '-connect', new URL(url).host], {
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d) => {
    out += d
  })
  child.stderr.on('data', (d) => {
    out += d
  })
  setTimeout(() => child.stdin.end(), 1500)
  await once(child, 'exit')
  return { asks: /^Requested Signature Algorithms|^Client Certificate Types/m.test(out), out }
}

t.test('a separate agent listener', async (t) => {
  requireTool('openssl', 'apt-get install -y openssl')
  const dir = tempDir(t)
  const server = await startServerProcess(t, {
    dataDir: path.join(dir, '.sigil'),
    env: { SIGIL_AGENT_LISTEN: '127.0.0.1:0' },
  })
  const agentUrl = await until(
    'the agent listener',
    () => /"agents":"(https:\/\/127\.0\.0\.1:\d+)"/.exec(server.logs())?.[1],
  )
  const main = await asksForClientCert(server.url)
  t.match(main.out, /CONNECTED/, 'control: openssl completed a handshake with the main listener')
  t.notOk(main.asks, 'the main listener requests no client certificate', { openssl: main.out })
  const agents = await asksForClientCert(agentUrl)
  t.ok(agents.asks, 'the agent listener does', { openssl: agents.out })

  const api = server.client()
  t.teardown(() => api.close())
  await api.request('POST', '/v1/trust-domains', { name: 'example.org' })
  const agentId = 'spiffe://example.org/sigil/agent/join_token/node1'
  await api.request('POST', '/v1/trust-domains/example.org/entries', {
    spiffeId: 'spiffe://example.org/web',
    parentId: agentId,
    selectors: ['unix:uid:1000'],
  })
  const { token } = await api.request<{ token: string }>(
    'POST',
    '/v1/trust-domains/example.org/join-tokens',
    {
      spiffeId: agentId,
    },
  )
  const agent = new Agent({
    server: new URL(agentUrl),
    trustDomain: 'example.org',
    trustBundlePem: server.caPem,
    attestor: { name: 'join_token', evidence: async () => ({ token }) },
    log: quiet,
  })
  t.teardown(() => agent.close())
  await agent.start()
  await agent.whenSynced()
  t.equal(agent.cache.svidCount(), 1, 'an agent on the agent listener attests, syncs and gets its SVIDs')

  // The main listener no longer authenticates agents, and says where to go.
  const refused = await api
    .request('GET', '/v1/agent/sync')
    .catch((e: { code?: string; message: string }) => e)
  t.match(
    refused,
    { code: 'UNAUTHENTICATED', message: /agent listener/ },
    'agent routes on the main listener point at the agent listener',
  )
})
