// Federation interop with go-spiffe, the library SPIRE federates with:
//   - go-spiffe's federation client fetches Sigil's bundle endpoint (https_web), as a SPIRE server would;
//   - Sigil fetches a go-spiffe bundle endpoint that presents an X509-SVID (https_spiffe): the right
//     endpoint SPIFFE ID is accepted, a wrong one refused; after the foreign root CA rotates, the new
//     bundle arrives at the refresh hint through the old root, and the endpoint's new SVID (under the
//     new root) is then trusted too;
//   - a real agent (`sigil agent run`) whose entry federates with the foreign trust domain hands the
//     foreign X.509 and JWT bundles to a go-spiffe workload.

import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { sha256File } from '../agent/helpers.ts'
import { startAgentProcess } from '../helpers/agent-process.ts'
import { makeCsr } from '../helpers/csr.ts'
import { startServerProcess } from '../helpers/server-process.ts'
import { tempDir } from '../helpers/tools.ts'
import { until } from '../helpers/wait.ts'
import { buildWorkload, GO_MISSING, goBinary, runWorkload } from './go-workload.ts'

const A = 'a.example'
const B = 'b.example'
const ENDPOINT = `spiffe://${B}/bundle-endpoint`

t.test('go-spiffe federation against Sigil, both directions', async (t) => {
  const go = goBinary()
  if (!go) {
    t.fail(GO_MISSING)
    return
  }
  const dir = tempDir(t)
  const bin = buildWorkload(go, dir, 'federation')
  const config = path.join(dir, 'server.yaml')
  writeFileSync(config, 'federation:\n  refreshHint: 5s\n')
  const server = await startServerProcess(t, {
    dataDir: path.join(dir, '.sigil'),
    args: ['--config', config],
  })
  const api = server.client()
  t.teardown(() => api.close())
  for (const name of [A, B, 'c.example']) await api.request('POST', '/v1/trust-domains', { name })
  const caFile = path.join(dir, 'server-ca.pem')
  writeFileSync(caFile, server.caPem)

  t.test('go-spiffe fetches Sigil’s bundle endpoint (https_web), as SPIRE does', async (t) => {
    const served = await api.request<{ spiffe_sequence: number }>('GET', `/v1/federation/${B}/bundle`)
    const [fetched] = await runWorkload(bin, [
      'fetch-bundle',
      '-td',
      B,
      '-url',
      `${server.url}/v1/federation/${B}/bundle`,
      '-ca',
      caFile,
    ])
    t.match(fetched, {
      trustDomain: B,
      x509Authorities: 1,
      sequence: served.spiffe_sequence,
      refreshHint: 5,
    })
    t.ok(fetched.jwtAuthorities >= 1)
  })

  // The go-spiffe bundle endpoint of b.example, with an X509-SVID b.example issued to it.
  const files = {
    cert: path.join(dir, 'endpoint.pem'),
    key: path.join(dir, 'endpoint.key'),
    bundle: path.join(dir, 'bundle.json'),
  }
  const mintEndpointSvid = async () => {
    const csr = await makeCsr()
    const res = await api.request<{ certChainPem: string }>('POST', `/v1/trust-domains/${B}/svids/x509`, {
      csr: csr.pem,
      spiffeId: ENDPOINT,
    })
    writeFileSync(files.key, csr.keyPem)
    writeFileSync(files.cert, res.certChainPem)
  }
  const publishBundle = async () => {
    const bundle = await api.request<{ spiffe_sequence: number; keys: unknown[] }>(
      'GET',
      `/v1/federation/${B}/bundle`,
    )
    writeFileSync(files.bundle, JSON.stringify(bundle))
    return bundle
  }
  await mintEndpointSvid()
  const initial = await publishBundle()
  const endpoint = spawn(
    bin,
    ['bundle-endpoint', '-td', B, '-cert', files.cert, '-key', files.key, '-bundle', files.bundle],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  t.teardown(() => endpoint.kill('SIGKILL'))
  let out = ''
  endpoint.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  endpoint.stderr!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const listening = await until(
    'the go-spiffe bundle endpoint',
    () => /"listening":"([^"]+)"/.exec(out)?.[1],
    30_000,
  )
  const url = `https://${listening}/`
  const bootstrap = await api.request<string>('GET', `/v1/trust-domains/${B}/bundle?format=pem`)

  t.test('Sigil fetches a go-spiffe bundle endpoint over https_spiffe', async (t) => {
    const created = await api.request<Record<string, unknown>>('POST', `/v1/trust-domains/${A}/federations`, {
      foreignTrustDomain: B,
      bundleEndpointUrl: url,
      profile: 'https_spiffe',
      endpointSpiffeId: ENDPOINT,
      trustBundle: bootstrap,
    })
    t.match(created, { lastError: null, sequence: initial.spiffe_sequence, roots: 1, refreshHintSeconds: 5 })

    const wrong = await api.request<Record<string, unknown>>(
      'POST',
      `/v1/trust-domains/c.example/federations`,
      {
        foreignTrustDomain: B,
        bundleEndpointUrl: url,
        profile: 'https_spiffe',
        endpointSpiffeId: `spiffe://${B}/not-the-endpoint`,
        trustBundle: bootstrap,
      },
    )
    t.match(
      wrong.lastError,
      /not the expected "spiffe:\/\/b.example\/not-the-endpoint"/,
      'a wrong endpoint ID is refused',
    )
    t.equal(wrong.sequence, 0, 'only the bootstrap bundle is held')
    await until('the log line', () =>
      /federated bundle of b.example refused; keeping the previous one/.test(server.logs()),
    )
    t.pass('the refusal is logged')
  })

  t.test('a real agent hands the federated bundles to a go-spiffe workload', async (t) => {
    const agentId = `spiffe://${A}/sigil/agent/join_token/fed-node`
    const WEB = `spiffe://${A}/web`
    await api.request('POST', `/v1/trust-domains/${A}/entries`, {
      spiffeId: WEB,
      parentId: agentId,
      selectors: [`unix:uid:${process.getuid!()}`, `unix:sha256:${sha256File(bin)}`],
      federatesWith: [B],
    })
    const { token } = await api.request<{ token: string }>('POST', `/v1/trust-domains/${A}/join-tokens`, {
      spiffeId: agentId,
    })
    const agent = startAgentProcess({
      serverUrl: server.url,
      caPem: server.caPem,
      trustDomain: A,
      joinToken: token,
      dir,
      socket: path.join(dir, 'run', 'agent.sock'),
    })
    t.teardown(() => agent.stop())
    await until('the agent', () => agent.log().includes('Sigil agent serving the Workload API'), 60_000)
    const [report] = await until(
      'the workload SVID through go-spiffe',
      async () => {
        try {
          const r = await runWorkload(bin, ['fetch', '-socket', agent.socket, '-audience', 'fed'])
          return r[0].x509Bundles.includes(B) && r
        } catch {
          return undefined
        }
      },
      30_000,
    )
    t.match(report, {
      x509SvidIds: [WEB],
      x509Bundles: [A, B],
      x509ContextBundles: [A, B],
      jwtApiValidated: WEB,
    })
    t.ok(
      report.jwtBundles.some((b: string) => b.startsWith(`${B}:`) && !b.endsWith(':0')),
      "b.example's JWT keys reach go-spiffe",
      { jwtBundles: report.jwtBundles },
    )
  })

  t.test('the foreign root CA rotates; federation keeps working with no manual refresh', async (t) => {
    const fed = () =>
      api.request<{ roots: number; sequence: number; lastError: string | null; lastRefreshAt: string }>(
        'GET',
        `/v1/trust-domains/${A}/federations/${B}`,
      )
    await api.request('POST', `/v1/trust-domains/${B}/authority/rotate?root=true`)
    // The endpoint publishes the new bundle, still presenting its SVID under the old root.
    const rotated = await publishBundle()
    const got = await until(
      'the rotated bundle at the refresh hint',
      async () => {
        const f = await fed()
        return f.sequence === rotated.spiffe_sequence && f
      },
      30_000,
      250,
    )
    t.equal(got.roots, 2, 'old and new root')
    t.equal(got.lastError, null)
    // Now the endpoint's SVID comes from the new root: trusted through the bundle just fetched.
    await mintEndpointSvid()
    const swapped = Date.now()
    const after = await until(
      'a refresh with the new endpoint SVID',
      async () => {
        const f = await fed()
        return Date.parse(f.lastRefreshAt) > swapped + 100 && f
      },
      30_000,
      250,
    )
    t.equal(after.lastError, null, 'the endpoint is authenticated through the new root')
    t.equal(after.roots, 2)
  })
})
