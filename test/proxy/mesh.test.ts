// The data plane end to end: a real trust service (child process), two agents with their proxies, real
// client processes (a C client whose code-DNA is under test, curl, openssl) and a real echo server.
// Traffic between the agents passes a relay that records every byte: the capture.

import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import type { Log } from '../../agents/workload/log.ts'
import type { FlowRecord } from '../../services/flows/flow.ts'
import { makeCsr } from '../helpers/csr.ts'
import {
  buildClient,
  echoServer,
  freePort,
  interactiveClient,
  patchedCopy,
  recordingRelay,
  runClient,
  sha256File,
} from '../helpers/proxy.ts'
import { startProxyAgent } from '../helpers/proxy-agent.ts'
import { startServerProcess } from '../helpers/server-process.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'
import { until } from '../helpers/wait.ts'

const run = promisify(execFile)
const TD = 'example.org'
const DB = `spiffe://${TD}/db`
const WEB = `spiffe://${TD}/web`
const quiet = process.env.SIGIL_TEST_LOG
  ? {
      info: (o: object, m: string) => console.error('INFO', m, JSON.stringify(o)),
      warn: (o: object, m: string) => console.error('WARN', m, JSON.stringify(o)),
      error: (o: object, m: string) => console.error('ERROR', m, JSON.stringify(o)),
      debug: (o: object, m: string) => console.error('DEBUG', m, JSON.stringify(o)),
    }
  : { info() {}, warn() {}, error() {} }

type FlowView = Omit<FlowRecord, 'start'> & { start: string }

t.test('two agents carry, decide and report connections', async (t) => {
  requireTool('openssl', 'apt-get install -y openssl')
  requireTool('curl', 'apt-get install -y curl')
  const dir = tempDir(t)
  const server = await startServerProcess(t, { dataDir: path.join(dir, '.sigil') })
  const api = server.client()
  t.teardown(() => api.close())
  await api.request('POST', '/v1/trust-domains', { name: TD })
  await api.request('POST', '/v1/trust-domains', { name: 'other.org' })
  const nodeA = `spiffe://${TD}/sigil/agent/join_token/node-a`
  const nodeB = `spiffe://${TD}/sigil/agent/join_token/node-b`

  const client = buildClient(dir)
  const tampered = patchedCopy(client, 'sigil-test-client-tampered')
  t.not(sha256File(client), sha256File(tampered), 'one changed byte, another code-DNA')
  const web = await api.request<{ id: string }>('POST', `/v1/trust-domains/${TD}/entries`, {
    spiffeId: WEB,
    parentId: nodeA,
    selectors: [`unix:sha256:${sha256File(client)}`],
  })
  await api.request('POST', `/v1/trust-domains/${TD}/entries`, {
    spiffeId: DB,
    parentId: nodeB,
    selectors: [`unix:sha256:${sha256File(process.execPath)}`],
  })

  const echo = await echoServer(t, 'echo:')
  const outside = await echoServer(t, 'outside:')

  const meshLog: string[] = []
  const startAgent = (id: string, proxyYaml: string, log: Log = quiet) =>
    startProxyAgent(t, { api, server, trustDomain: TD, id, proxyYaml, log })

  const b = await startAgent(
    nodeB,
    `mesh:\n  listen: 127.0.0.1:0\nservices:\n  - name: db\n    spiffeId: ${DB}\n    forward: 127.0.0.1:${echo.port}\n`,
    {
      ...quiet,
      info: (o: object, m: string) => meshLog.push(`${m} ${JSON.stringify(o)}`),
      warn: (o: object, m: string) => meshLog.push(`${m} ${JSON.stringify(o)}`),
    },
  )
  const meshPort = b.plane.addresses.mesh!.port
  const relay = await recordingRelay(t, meshPort)
  const impostorPort = await freePort()
  const a = await startAgent(
    nodeA,
    [
      'upstreams:',
      '  - name: db',
      '    listen: 127.0.0.1:0',
      `    spiffeId: ${DB}`,
      `    agent: 127.0.0.1:${relay.port}`,
      '  - name: impostor',
      '    listen: 127.0.0.1:0',
      `    spiffeId: ${DB}`,
      `    agent: 127.0.0.1:${impostorPort}`,
      'egress:',
      '  listen: 127.0.0.1:0',
      '',
    ].join('\n'),
  )
  const upstream = a.plane.addresses.upstreams.db!.port
  const egress = a.plane.addresses.egress!.port
  await until('the db SVID on node B', () => b.agent.cache.svidById(DB))
  await until('the web SVID on node A', () => a.agent.cache.svidById(WEB))

  async function flows(query = ''): Promise<FlowView[]> {
    const res = await api.request<{ flows: FlowView[] }>(
      'GET',
      `/v1/trust-domains/${TD}/flows?limit=500${query}`,
    )
    return res.flows
  }
  async function setPolicy(text: string): Promise<number> {
    const res = await api.request<{ version: number }>('PUT', `/v1/trust-domains/${TD}/policy`, { text })
    await until('both agents applied the policy', () =>
      a.plane.policy.version === res.version && b.plane.policy.version === res.version ? true : undefined,
    )
    return res.version
  }

  await t.test('baseline: traffic flows over mTLS, identified and reported on both ends', async (t) => {
    const res = await runClient(client, upstream, 'PLAINTEXT-MARKER-0451\n')
    t.equal(res.stdout, 'echo:PLAINTEXT-MARKER-0451\n', 'the echo came back through both agents')
    const wire = relay.captured()
    t.ok(wire.length > 0, 'the relay saw the agents talk')
    t.equal(wire.indexOf('PLAINTEXT-MARKER-0451'), -1, 'the capture holds no plaintext')
    t.ok(wire.includes(Buffer.from([0x17, 0x03, 0x03])), 'the capture holds TLS application records')

    const both = await until('both sides reported the flow', async () => {
      const all = await flows()
      const egressSide = all.find((f) => f.side === 'egress' && f.source.path === client)
      const ingressSide = egressSide && all.find((f) => f.side === 'ingress' && f.id === egressSide.id)
      return egressSide && ingressSide ? { egressSide, ingressSide } : undefined
    })
    const f = both.egressSide
    t.equal(f.source.spiffeId, WEB)
    t.equal(f.source.sha256, sha256File(client), 'the code-DNA is in the record')
    t.equal(f.destination.spiffeId, DB)
    t.equal(f.destination.port, echo.port, "the port is the service's")
    t.equal(f.verdict, 'allowed')
    t.equal(f.bytesOut, 'PLAINTEXT-MARKER-0451\n'.length)
    t.equal(f.bytesIn, 'echo:PLAINTEXT-MARKER-0451\n'.length)
    t.equal(f.source.agent, nodeA)
    t.equal(both.ingressSide.source.spiffeId, WEB, 'the far side saw the same identity')
    t.equal(both.ingressSide.destination.agent, nodeB)

    const other = await runClient(tampered, upstream, 'hi\n')
    t.equal(other.stdout, 'echo:hi\n', 'baseline lets an unidentified process through')
    const seen = await until('the unidentified flow', async () =>
      (await flows()).find((x) => x.side === 'egress' && x.source.path === tampered),
    )
    t.equal(seen.verdict, 'unidentified')
    t.notOk(seen.source.spiffeId)
  })

  await t.test('explicit: only what a rule allows, code-DNA decides, deny wins', async (t) => {
    await setPolicy(
      `mode: explicit\nrules:\n  - name: web-to-db\n    from: { spiffeId: "${WEB}" }\n    to: { spiffeId: "${DB}", ports: [${echo.port}] }\n`,
    )
    t.equal(
      (await runClient(client, upstream, 'ok\n')).stdout,
      'echo:ok\n',
      'the permitted client gets through',
    )
    const refused = await runClient(tampered, upstream, 'let me in\n')
    t.equal(refused.stdout, '', 'the copy with one byte changed is refused')
    const why = await until('the refusal record', async () =>
      (await flows('&verdict=denied')).find((x) => x.source.path === tampered),
    )
    t.match(why.reason, /no SPIFFE ID/, `the record says why: ${why.reason}`)
    t.equal(why.source.sha256, sha256File(tampered))

    await setPolicy(
      [
        'mode: explicit',
        'rules:',
        '  - name: web-to-db',
        `    from: { spiffeId: "${WEB}" }`,
        `    to: { spiffeId: "${DB}" }`,
        '  - name: not-this-binary',
        '    action: deny',
        `    from: { selector: "unix:sha256:${sha256File(client)}" }`,
        `    to: { spiffeId: "${DB}" }`,
        '',
      ].join('\n'),
    )
    t.equal((await runClient(client, upstream, 'again\n')).stdout, '', 'deny beats allow')
    const denied = await until('the deny record', async () =>
      (await flows('&verdict=denied')).find((x) => x.rule === 'not-this-binary' && x.side === 'egress'),
    )
    t.equal(denied.source.spiffeId, WEB)
  })

  await t.test('FQDN egress is allowed and refused by name', async (t) => {
    await setPolicy(
      `mode: explicit\nrules:\n  - name: web-to-localhost\n    from: { spiffeId: "${WEB}" }\n    to: { fqdn: "localhost", ports: [${outside.port}] }\n`,
    )
    const ok = await runClient(
      client,
      egress,
      `CONNECT localhost:${outside.port} HTTP/1.1\r\nHost: x\r\n\r\nping\n`,
    )
    t.match(ok.stdout, /^HTTP\/1\.1 200 Connection Established\r\n\r\noutside:ping\n$/, 'allowed by name')
    const byIp = await runClient(client, egress, `CONNECT 127.0.0.1:${outside.port} HTTP/1.1\r\n\r\nping\n`)
    t.match(byIp.stdout, /^HTTP\/1\.1 403 Forbidden/, 'the same server under another name is refused')
    t.notMatch(byIp.stdout, /outside:ping/)
    // curl holds no identity here: explicit mode refuses it, and curl reports the proxy's 403.
    const curl = await run('curl', [
      '-sS',
      '-p',
      '-x',
      `http://127.0.0.1:${egress}`,
      `http://localhost:${outside.port}/`,
    ]).catch((e: { code: number; stderr: string }) => e)
    t.match(String((curl as { stderr: string }).stderr), /403/, 'curl sees the refusal')
    const rec = await until('the FQDN refusal record', async () =>
      (await flows('&verdict=denied')).find((x) => x.destination.fqdn === '127.0.0.1'),
    )
    t.equal(rec.source.spiffeId, WEB)
    const allowed = await until('the FQDN allow record', async () =>
      (await flows()).find((x) => x.destination.fqdn === 'localhost' && x.verdict === 'allowed'),
    )
    t.equal(allowed.rule, 'web-to-localhost')
  })

  await t.test('switching baseline to explicit takes effect on new connections', async (t) => {
    await setPolicy(`mode: baseline\nrules: []\n`)
    t.equal((await runClient(tampered, upstream, 'x\n')).stdout, 'echo:x\n', 'baseline: through')
    const switched = Date.now()
    await api.request('PUT', `/v1/trust-domains/${TD}/policy/mode`, { mode: 'explicit' })
    await until('explicit refuses the unidentified client', async () => {
      const r = await runClient(tampered, upstream, 'x\n')
      return r.stdout === '' ? true : undefined
    })
    t.comment(`explicit took effect on new connections ${Date.now() - switched} ms after the API call`)
    t.pass('the switch took effect')
  })

  await t.test('an SVID rotation mid-stream keeps the connection', async (t) => {
    await setPolicy(`mode: baseline\nrules: []\n`)
    const before = a.agent.cache.svidById(WEB)!.certChainDer[0]!
    const handshakes = a.plane.proxy.pool.handshakes
    const c = interactiveClient(client, upstream)
    t.teardown(() => c.close())
    c.send('one\n')
    await c.waitFor('echo:one\n')
    // Changing the entry makes the agent fetch a new SVID for it at once.
    await api.request('PATCH', `/v1/trust-domains/${TD}/entries/${web.id}`, { dnsNames: ['web.example.org'] })
    await until('a new web SVID', () => {
      const now = a.agent.cache.svidById(WEB)?.certChainDer[0]
      return now && !now.equals(before)
    })
    c.send('two\n')
    await c.waitFor('echo:two\n')
    t.pass('the established connection carried on across the rotation')
    t.equal((await runClient(client, upstream, 'new\n')).stdout, 'echo:new\n')
    t.ok(a.plane.proxy.pool.handshakes > handshakes, 'a new connection uses the new certificate')
  })

  await t.test('a far side that proves the wrong identity is refused', async (t) => {
    const csr = await makeCsr()
    const minted = await api.request<{ certChainPem: string }>('POST', `/v1/trust-domains/${TD}/svids/x509`, {
      csr: csr.pem,
      spiffeId: `spiffe://${TD}/impostor`,
    })
    writeFileSync(path.join(dir, 'imp.pem'), minted.certChainPem)
    writeFileSync(path.join(dir, 'imp.key'), csr.keyPem)
    const sServer = spawn(
      'openssl',
      [
        's_server',
        '-accept',
        `127.0.0.1:${impostorPort}`,
        '-cert',
        path.join(dir, 'imp.pem'),
        '-cert_chain',
        path.join(dir, 'imp.pem'),
        '-key',
        path.join(dir, 'imp.key'),
        '-alpn',
        'h2',
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    )
    t.teardown(() => sServer.kill())
    let banner = ''
    sServer.stdout.on('data', (d) => {
      banner += d
    })
    await until('openssl s_server listening', () => banner.includes('ACCEPT'))
    const port = a.plane.addresses.upstreams.impostor!.port
    const res = await runClient(client, port, 'secret\n')
    t.equal(res.stdout, '', 'nothing came back')
    const rec = await until('the refusal record', async () =>
      (await flows('&verdict=denied')).find((x) => x.destination.service === 'impostor'),
    )
    t.match(rec.reason, /proved spiffe:\/\/example\.org\/impostor, expected spiffe:\/\/example\.org\/db/)
  })

  await t.test('the mesh port refuses foreign, expired and missing client certificates', async (t) => {
    const sni = (await import('../../agents/proxy/certificates.ts')).sniFor(DB)
    // openssl s_client as the far agent's client. A refused certificate ends the session with an alert
    // (under TLS 1.3 the server judges it after the client's Finished); an accepted one leaves the
    // HTTP/2 session open, so s_client is still running after the wait.
    async function sClient(cert?: { pem: string; key: string }): Promise<{ refused: boolean; out: string }> {
      const args = [
        's_client',
        '-connect',
        `127.0.0.1:${meshPort}`,
        '-servername',
        sni,
        '-alpn',
        'h2',
        '-quiet',
      ]
      if (cert) {
        writeFileSync(path.join(dir, 'c.pem'), cert.pem)
        writeFileSync(path.join(dir, 'c.key'), cert.key)
        args.push(
          '-cert',
          path.join(dir, 'c.pem'),
          '-cert_chain',
          path.join(dir, 'c.pem'),
          '-key',
          path.join(dir, 'c.key'),
        )
      }
      const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] })
      let out = ''
      child.stdout.on('data', (d) => {
        out += d
      })
      child.stderr.on('data', (d) => {
        out += d
      })
      const exited = await Promise.race([
        once(child, 'exit').then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 3000)),
      ])
      child.kill()
      return { refused: exited, out }
    }
    async function mint(td: string, ttl: number) {
      const csr = await makeCsr()
      const r = await api.request<{ certChainPem: string }>('POST', `/v1/trust-domains/${td}/svids/x509`, {
        csr: csr.pem,
        spiffeId: `spiffe://${td}/client`,
        ttl,
      })
      return { pem: r.certChainPem, key: csr.keyPem }
    }
    const valid = await sClient(await mint(TD, 300))
    t.notOk(valid.refused, 'control: a valid SVID of the trust domain is accepted')
    const none = await sClient()
    t.ok(none.refused, 'no client certificate: refused')
    t.match(meshLog.at(-1), /refused: the client certificate did not verify/, 'logged')
    const foreign = await sClient(await mint('other.org', 300))
    t.ok(foreign.refused, 'an SVID of another trust domain: refused')
    t.match(meshLog.join('\n'), /refused[^\n]*(unable to get|unknown ca|UNABLE_TO_GET_ISSUER)/i, 'logged why')
    const shortLived = await mint(TD, 1)
    await new Promise((r) => setTimeout(r, 2500))
    const expired = await sClient(shortLived)
    t.ok(expired.refused, 'an expired SVID: refused')
    t.match(meshLog.join('\n'), /refused[^\n]*expired/i, 'logged why')
    t.equal((await runClient(client, upstream, 'still\n')).stdout, 'echo:still\n', 'the mesh still serves')
  })

  await t.test('garbage, half-open and slow connections stall nobody', async (t) => {
    const junk: net.Socket[] = []
    t.teardown(() => {
      for (const s of junk) s.destroy()
    })
    for (const port of [meshPort, egress]) {
      for (let i = 0; i < 30; i++) {
        const s = net.connect(port, '127.0.0.1')
        s.on('error', () => {})
        junk.push(s)
        if (i % 3 === 0) s.write(Buffer.from('\x16\x03\x01garbage that is not a handshake\r\n\r\n'))
        if (i % 3 === 1) s.write('CONNECT ') // slow: a request that never finishes
      }
    }
    await new Promise((r) => setTimeout(r, 200))
    t.equal(
      (await runClient(client, upstream, 'through\n')).stdout,
      'echo:through\n',
      'the mesh still serves',
    )
    const viaEgress = await runClient(client, egress, `CONNECT 127.0.0.1:${outside.port} HTTP/1.1\r\n\r\n`)
    t.match(viaEgress.stdout, /^HTTP\/1\.1 (200|403)/, 'the CONNECT listener still answers')
    const bad = await runClient(client, egress, 'GET / HTTP/1.1\r\n\r\n')
    t.match(bad.stdout, /^HTTP\/1\.1 405/, 'not CONNECT: 405')
  })
})
