// Runs inside a network namespace (started by transparent.test.ts): a trust service, two agents, and a
// client that connects to 10.99.0.1:5432, an address nothing listens on. iptables REDIRECT sends the
// connection to agent A's transparent listener, which reads SO_ORIGINAL_DST, maps it to the `db`
// upstream and carries it over the mesh to agent B. Prints one JSON line with what happened.

import path from 'node:path'
import { buildClient, echoServer, runClient, sha256File } from '../helpers/proxy.ts'
import { startProxyAgent } from '../helpers/proxy-agent.ts'
import { startServerProcess } from '../helpers/server-process.ts'
import { tempDir } from '../helpers/tools.ts'
import { until } from '../helpers/wait.ts'

const [transparentPort] = process.argv.slice(2).map(Number)
const teardowns: Array<() => unknown> = []
const t = { teardown: (fn: () => unknown) => teardowns.push(fn) }
const _quiet = { info() {}, warn() {}, error() {} }
const TD = 'example.org'

async function main() {
  const dir = tempDir(t)
  const server = await startServerProcess(t, { dataDir: path.join(dir, '.sigil') })
  const api = server.client()
  teardowns.push(() => api.close())
  await api.request('POST', '/v1/trust-domains', { name: TD })
  const client = buildClient(dir)
  await api.request('POST', `/v1/trust-domains/${TD}/entries`, {
    spiffeId: `spiffe://${TD}/web`,
    parentId: `spiffe://${TD}/sigil/agent/join_token/node-a`,
    selectors: [`unix:sha256:${sha256File(client)}`],
  })
  await api.request('POST', `/v1/trust-domains/${TD}/entries`, {
    spiffeId: `spiffe://${TD}/db`,
    parentId: `spiffe://${TD}/sigil/agent/join_token/node-b`,
    selectors: ['unix:uid:0'],
  })
  const echo = await echoServer(t, 'echo:')
  const start = (node: string, proxyYaml: string) =>
    startProxyAgent(t, {
      api,
      server,
      trustDomain: TD,
      id: `spiffe://${TD}/sigil/agent/join_token/${node}`,
      proxyYaml,
    })
  const b = await start(
    'node-b',
    `mesh: { listen: "127.0.0.1:0" }\nservices:\n  - { name: db, spiffeId: "spiffe://${TD}/db", forward: "127.0.0.1:${echo.port}" }\n`,
  )
  await until('the db SVID', () => b.agent.cache.svidById(`spiffe://${TD}/db`))
  const a = await start(
    'node-a',
    [
      `transparent: { listen: "127.0.0.1:${transparentPort}" }`,
      'upstreams:',
      `  - { name: db, match: "10.99.0.1:5432", spiffeId: "spiffe://${TD}/db", agent: "127.0.0.1:${b.plane.addresses.mesh!.port}" }`,
      '',
    ].join('\n'),
  )
  await until('the web SVID', () => a.agent.cache.svidById(`spiffe://${TD}/web`))
  const res = await runClient(client, 5432, 'through-the-redirect\n', 15_000, '10.99.0.1')
  const direct = await runClient(client, echo.port, 'direct\n')
  const flow = await until('the flow record', async () => {
    const { flows } = await api.request<{ flows: Array<Record<string, any>> }>(
      'GET',
      `/v1/trust-domains/${TD}/flows?limit=50`,
    )
    return flows.find((f) => f.side === 'egress' && f.destination.service === 'db')
  })
  return { stdout: res.stdout, direct: direct.stdout, flow }
}

main()
  .then((result) => {
    process.stdout.write(`${JSON.stringify({ ok: true, ...result })}\n`)
  })
  .catch((err) => {
    process.stdout.write(`${JSON.stringify({ ok: false, error: String(err?.stack ?? err) })}\n`)
  })
  .finally(async () => {
    for (const fn of teardowns.reverse()) await Promise.resolve(fn()).catch(() => {})
    process.exit(0)
  })
