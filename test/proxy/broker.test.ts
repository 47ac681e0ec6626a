// The tunnel broker on loopback: agent A reaches a service behind agent B only through the broker
// (A's configuration has no address for B), end-to-end mTLS inside the relay, the policy deciding,
// relay flow records, and the bad inputs: unknown tunnel, a tunnel not allowed, a far side that never
// answers, a flood of requests.

import { spawn } from 'node:child_process'
import http2 from 'node:http2'
import path from 'node:path'
import t from 'tap'
import { Agent } from '../../agents/daemon/agent.ts'
import { startDataPlane } from '../../agents/daemon/data-plane.ts'
import { parseProxyConfig } from '../../agents/proxy/config.ts'
import { createWorkloadAttestor } from '../../agents/workload/attestor.ts'
import type { Log } from '../../agents/workload/log.ts'
import { buildClient, echoServer, runClient, sha256File } from '../helpers/proxy.ts'
import { startProxyAgent } from '../helpers/proxy-agent.ts'
import { sigilBin, startServerProcess } from '../helpers/server-process.ts'
import { tempDir } from '../helpers/tools.ts'
import { until } from '../helpers/wait.ts'

const TD = 'example.org'
const DB = `spiffe://${TD}/db`
const WEB = `spiffe://${TD}/web`
const quiet = { info() {}, warn() {}, error() {} }

t.test('a tunnel through the broker', async (t) => {
  const dir = tempDir(t)
  const server = await startServerProcess(t, {
    dataDir: path.join(dir, '.sigil'),
    env: { SIGIL_BROKER_LISTEN: '127.0.0.1:0' },
  })
  const brokerAddr = await until(
    'the broker address',
    () => /"broker":"(127\.0\.0\.1:\d+)"/.exec(server.logs())?.[1],
  )
  const api = server.client()
  t.teardown(() => api.close())
  await api.request('POST', '/v1/trust-domains', { name: TD })
  const nodeA = `spiffe://${TD}/sigil/agent/join_token/node-a`
  const nodeB = `spiffe://${TD}/sigil/agent/join_token/node-b`
  const client = buildClient(dir)
  await api.request('POST', `/v1/trust-domains/${TD}/entries`, {
    spiffeId: WEB,
    parentId: nodeA,
    selectors: [`unix:sha256:${sha256File(client)}`],
  })
  const dbEntry = await api.request<{ id: string }>('POST', `/v1/trust-domains/${TD}/entries`, {
    spiffeId: DB,
    parentId: nodeB,
    selectors: ['unix:uid:0'],
  })

  const echo = await echoServer(t, 'db:')

  const startAgent = (id: string, proxyYaml: string, log: Log = quiet) =>
    startProxyAgent(t, { api, server, trustDomain: TD, id, proxyYaml, log })
  const b = await startAgent(
    nodeB,
    `broker: { servers: ["${brokerAddr}"] }\nmesh: { listen: "127.0.0.1:0" }\nservices:\n  - { name: db, spiffeId: "${DB}", forward: "127.0.0.1:${echo.port}" }\n`,
  )
  const a = await startAgent(
    nodeA,
    [
      `broker: { servers: ["${brokerAddr}"] }`,
      'upstreams:',
      `  - { name: db, listen: "127.0.0.1:0", spiffeId: "${DB}", tunnel: db }`,
      `  - { name: nowhere, listen: "127.0.0.1:0", spiffeId: "${DB}", tunnel: nowhere }`,
      '',
    ].join('\n'),
  )
  await until('both agents connected to the broker', () =>
    a.plane.proxy.broker!.connected().length && b.plane.proxy.broker!.connected().length ? true : undefined,
  )
  const upstream = a.plane.addresses.upstreams.db!.port

  await t.test('the tunnel carries the connection end to end', async (t) => {
    await api.request('POST', `/v1/trust-domains/${TD}/tunnels`, { name: 'db', spiffeId: DB, agent: nodeB })
    const r = await runClient(client, upstream, 'through the broker\n')
    t.equal(r.stdout, 'db:through the broker\n')
    // The relay stream carries agent A's pooled mesh connection; the broker reports it when it ends.
    a.plane.proxy.pool.close()
    const flows = await until('egress, ingress and relay records', async () => {
      const { flows } = await api.request<{ flows: Array<Record<string, any>> }>(
        'GET',
        `/v1/trust-domains/${TD}/flows?limit=100`,
      )
      const egress = flows.find((f) => f.side === 'egress' && f.verdict === 'allowed')
      const relay = egress && flows.find((f) => f.side === 'relay' && f.id === egress.id)
      const ingress = egress && flows.find((f) => f.side === 'ingress' && f.id === egress.id)
      return relay && ingress ? { egress, relay, ingress } : undefined
    }).catch((err) => {
      throw new Error(
        `${err.message}\n${server
          .logs()
          .split('\n')
          .filter((l) => /broker|relay/.test(l))
          .join('\n')}`,
      )
    })
    t.equal(flows.egress.source.spiffeId, WEB)
    t.equal(flows.ingress.source.spiffeId, WEB, 'the far agent saw the workload identity through the relay')
    t.equal(flows.relay.source.agent, nodeA)
    t.equal(flows.relay.destination.agent, nodeB)
  })

  await t.test('an unknown tunnel is refused with a reason', async (t) => {
    const port = a.plane.addresses.upstreams.nowhere!.port
    t.equal((await runClient(client, port, 'x\n')).stdout, '')
    const rec = await until('the refusal', async () => {
      const { flows } = await api.request<{ flows: Array<Record<string, any>> }>(
        'GET',
        `/v1/trust-domains/${TD}/flows?verdict=denied`,
      )
      return flows.find((f) => f.destination.service === 'nowhere')
    })
    t.match(rec.reason, /no tunnel "nowhere"/)
  })

  await t.test('the policy can deny the tunnel', async (t) => {
    await api.request('PUT', `/v1/trust-domains/${TD}/policy`, {
      text: `rules:\n  - name: no-db\n    action: deny\n    from: { spiffeId: "${WEB}" }\n    to: { spiffeId: "${DB}" }\n`,
    })
    await until('the agents have the policy', () =>
      a.plane.policy.version >= 1 && b.plane.policy.version >= 1 ? true : undefined,
    )
    a.plane.proxy.pool.close() // new connections, so the broker decides again
    t.equal((await runClient(client, upstream, 'x\n')).stdout, '')
    const rec = await until('the deny record', async () => {
      const { flows } = await api.request<{ flows: Array<Record<string, any>> }>(
        'GET',
        `/v1/trust-domains/${TD}/flows?verdict=denied`,
      )
      return flows.find((f) => f.rule === 'no-db')
    })
    t.ok(rec)
    await api.request('DELETE', `/v1/trust-domains/${TD}/policy`)
    await until('the agents have the reset policy', () => (a.plane.policy.version >= 2 ? true : undefined))
  })

  await t.test('a far side that never answers is refused after the accept timeout', async (t) => {
    // Agent C attests and holds a listen stream on the broker, but never accepts what it is sent.
    const nodeC = `spiffe://${TD}/sigil/agent/join_token/node-c`
    const { token } = await api.request<{ token: string }>('POST', `/v1/trust-domains/${TD}/join-tokens`, {
      spiffeId: nodeC,
    })
    const c = new Agent({
      server: new URL(server.url),
      trustDomain: TD,
      trustBundlePem: server.caPem,
      attestor: { name: 'join_token', evidence: async () => ({ token }) },
      log: quiet,
    })
    t.teardown(() => c.close())
    await c.start()
    const creds = c.credentials()!
    const silent = http2.connect(`https://${brokerAddr}`, {
      ca: server.caPem,
      cert: creds.certChainPem,
      key: creds.keyPem,
    })
    t.teardown(() => silent.destroy())
    const listen = silent.request({ ':method': 'POST', ':path': '/v1/broker/listen' }, { endStream: false })
    listen.on('error', () => {})
    await new Promise((r) => listen.once('response', r))
    await api.request('POST', `/v1/trust-domains/${TD}/tunnels`, {
      name: 'silent',
      spiffeId: DB,
      agent: nodeC,
    })
    const started = Date.now()
    const res = await a.plane.proxy.broker!.open('silent', {})
    t.notOk(res.ok)
    if (!res.ok) {
      t.equal(res.status, 504)
      t.equal(res.code, 'TUNNEL_NO_ANSWER')
      t.match(res.reason, /did not answer/)
    }
    t.comment(`refused after ${Date.now() - started} ms`)
    const other = await runClient(client, upstream, 'still fine\n')
    t.equal(other.stdout, 'db:still fine\n', 'the other tunnel keeps working')
  })

  await t.test('a flood of tunnel requests from one agent is rate limited', async (t) => {
    const results = await Promise.all(
      Array.from({ length: 300 }, () => a.plane.proxy.broker!.open('no-such-tunnel', {})),
    )
    const limited = results.filter((r) => !r.ok && r.status === 429).length
    const notFound = results.filter((r) => !r.ok && r.status === 404).length
    t.ok(limited > 0, `${limited} of 300 refused with 429`)
    t.ok(notFound > 0, `${notFound} answered (404: no such tunnel) within the rate`)
    t.equal(limited + notFound, 300)
    await new Promise((r) => setTimeout(r, 1500))
    const after = await runClient(client, upstream, 'after the flood\n')
    t.equal(after.stdout, 'db:after the flood\n', "the agent's tunnels work again once the rate allows")
  })

  await t.test('a federated trust domain uses the tunnel with its own identities', async (t) => {
    const OTHER = 'other.org'
    const WEB2 = `spiffe://${OTHER}/web2`
    await api.request('POST', '/v1/trust-domains', { name: OTHER })
    const endpoint = (td: string) => `${server.url}/v1/federation/${td}/bundle`
    await api.request('POST', `/v1/trust-domains/${TD}/federations`, {
      foreignTrustDomain: OTHER,
      bundleEndpointUrl: endpoint(OTHER),
      caBundlePem: server.caPem,
    })
    await api.request('POST', `/v1/trust-domains/${OTHER}/federations`, {
      foreignTrustDomain: TD,
      bundleEndpointUrl: endpoint(TD),
      caBundlePem: server.caPem,
    })
    // db accepts other.org's workloads; web2 (other.org) trusts example.org's.
    await api.request('PATCH', `/v1/trust-domains/${TD}/entries/${dbEntry.id}`, { federatesWith: [OTHER] })
    const nodeA2 = `spiffe://${OTHER}/sigil/agent/join_token/node-a2`
    await api.request('POST', `/v1/trust-domains/${OTHER}/entries`, {
      spiffeId: WEB2,
      parentId: nodeA2,
      selectors: [`unix:sha256:${sha256File(client)}`],
      federatesWith: [TD],
    })
    // example.org's policy admits the foreign identity, and nothing else.
    await api.request('PUT', `/v1/trust-domains/${TD}/policy`, {
      text: `mode: explicit\nrules:\n  - name: partner-web-to-db\n    from: { spiffeId: "${WEB2}" }\n    to: { spiffeId: "${DB}" }\n`,
    })
    const { token } = await api.request<{ token: string }>('POST', `/v1/trust-domains/${OTHER}/join-tokens`, {
      spiffeId: nodeA2,
    })
    const a2 = new Agent({
      server: new URL(server.url),
      trustDomain: OTHER,
      trustBundlePem: server.caPem,
      attestor: { name: 'join_token', evidence: async () => ({ token }) },
      log: quiet,
    })
    t.teardown(() => a2.close())
    await a2.start()
    await a2.whenSynced()
    const plane = await startDataPlane({
      agent: a2,
      config: parseProxyConfig(
        `broker: { servers: ["${brokerAddr}"] }\nupstreams:\n  - { name: db, listen: "127.0.0.1:0", spiffeId: "${DB}", tunnel: db }\n`,
      ),
      attestor: createWorkloadAttestor(),
      log: quiet,
      flowIntervalMs: 100,
    })
    t.teardown(() => plane.close())
    await until('other.org agent on the broker, with example.org roots', () =>
      plane.proxy.broker!.connected().length && a2.cache.federatedRoots().has(TD) ? true : undefined,
    )
    await until('node B holds other.org roots', () =>
      b.agent.cache.federatedRoots().has(OTHER) ? true : undefined,
    )
    const port = plane.addresses.upstreams.db!.port
    const reply = await until('the partner reaches db', async () => {
      const r = await runClient(client, port, 'from the partner\n')
      return r.stdout === 'db:from the partner\n' ? r : undefined
    })
    t.equal(reply.stdout, 'db:from the partner\n')
    const ingress = await until('the ingress record names the foreign identity', async () => {
      const { flows } = await api.request<{ flows: Array<Record<string, any>> }>(
        'GET',
        `/v1/trust-domains/${TD}/flows?side=ingress`,
      )
      return flows.find((f) => f.source.spiffeId === WEB2)
    })
    t.equal(ingress.rule, 'partner-web-to-db', 'decided by the rule that names the federated identity')
    // example.org's own web is not in the rule: explicit refuses it.
    a.plane.proxy.pool.close()
    t.equal(
      (await runClient(client, upstream, 'x\n')).stdout,
      '',
      "example.org's web is refused by the same policy",
    )
  })

  await t.test('several brokers: when one goes away, the tunnel goes through another', async (t) => {
    await api.request('DELETE', `/v1/trust-domains/${TD}/policy`)
    // Two more brokers on their own (`sigil broker run`), on the trust service's store and KEK.
    const brokers = ['one', 'two'].map(() => {
      const proc = spawn(
        process.execPath,
        [sigilBin, 'broker', 'run', '--data-dir', path.join(dir, '.sigil'), '--listen', '127.0.0.1:0'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
      let out = ''
      proc.stdout!.on('data', (d) => {
        out += d
      })
      proc.stderr!.on('data', (d) => {
        out += d
      })
      t.teardown(() => proc.kill('SIGKILL'))
      return { proc, out: () => out }
    })
    const addrs = await Promise.all(
      brokers.map((b) =>
        until('a standalone broker', () => /"broker":"(127\.0\.0\.1:\d+)"/.exec(b.out())?.[1]),
      ),
    )
    const servers = `[${addrs.map((x) => `"${x}"`).join(', ')}]`
    // Two more agents (new node identities, with entries of their own) that know both brokers.
    const nodeA3 = `spiffe://${TD}/sigil/agent/join_token/node-a3`
    const nodeB3 = `spiffe://${TD}/sigil/agent/join_token/node-b3`
    await api.request('POST', `/v1/trust-domains/${TD}/entries`, {
      spiffeId: WEB,
      parentId: nodeA3,
      selectors: [`unix:sha256:${sha256File(client)}`],
    })
    await api.request('POST', `/v1/trust-domains/${TD}/entries`, {
      spiffeId: DB,
      parentId: nodeB3,
      selectors: ['unix:uid:0'],
    })
    await api.request('POST', `/v1/trust-domains/${TD}/tunnels`, { name: 'db3', spiffeId: DB, agent: nodeB3 })
    const b2 = await startAgent(
      nodeB3,
      `broker: { servers: ${servers} }\nmesh: { listen: "127.0.0.1:0" }\nservices:\n  - { name: db, spiffeId: "${DB}", forward: "127.0.0.1:${echo.port}" }\n`,
    )
    const a2log: string[] = []
    const a2 = await startAgent(
      nodeA3,
      `broker: { servers: ${servers} }\nupstreams:\n  - { name: db, listen: "127.0.0.1:0", spiffeId: "${DB}", tunnel: db3 }\n`,
      {
        info: (o: object, m: string) => a2log.push(`${Date.now()} ${m} ${JSON.stringify(o)}`),
        warn: (o: object, m: string) => a2log.push(`${Date.now()} ${m} ${JSON.stringify(o)}`),
        error: (o: object, m: string) => a2log.push(`${Date.now()} ${m} ${JSON.stringify(o)}`),
        debug: (o: object, m: string) => a2log.push(`${Date.now()} ${m} ${JSON.stringify(o)}`),
      },
    )
    await until('both agents on both brokers', () =>
      a2.plane.proxy.broker!.connected().length === 2 && b2.plane.proxy.broker!.connected().length === 2
        ? true
        : undefined,
    )
    const port = a2.plane.addresses.upstreams.db!.port
    t.equal((await runClient(client, port, 'both up\n')).stdout, 'db:both up\n')
    brokers[0]!.proc.kill('SIGKILL')
    a2.plane.proxy.pool.close()
    const after = await until('the tunnel through the other broker', async () => {
      const r = await runClient(client, port, 'one down\n')
      return r.stdout === 'db:one down\n' ? r : undefined
    }).catch(async (err) => {
      const { flows } = await api.request<{ flows: Array<Record<string, any>> }>(
        'GET',
        `/v1/trust-domains/${TD}/flows?verdict=denied&limit=5`,
      )
      throw new Error(`${err.message}: ${flows.map((f) => f.reason).join(' | ')}\n${a2log.join('\n')}`)
    })
    t.equal(after.stdout, 'db:one down\n', 'the second broker carries the tunnel')
  })
})
