// The real server and the real CLI: sigil policy set/show/mode/history/dry-run/recommend, and sigil flows
// list/graph over flows an attested agent reported over mTLS.

import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { TrustServiceClient } from '../../agents/daemon/server-client.ts'
import { derToPem } from '../../services/authority/pem.ts'
import { makeCsr } from '../helpers/csr.ts'
import { sigilBin, startServerProcess } from '../helpers/server-process.ts'
import { tempDir } from '../helpers/tools.ts'

function cli(server: { url: string; dataDir: string }, args: string[]) {
  const res = spawnSync(process.execPath, [sigilBin, '--server', server.url, ...args], {
    cwd: path.dirname(server.dataDir),
    env: { ...process.env, SIGIL_DATA_DIR: server.dataDir, SIGIL_TOKEN: '', SIGIL_CA_BUNDLE: '' },
    encoding: 'utf8',
    timeout: 60_000,
  })
  return { code: res.status, stdout: res.stdout, stderr: res.stderr, json: () => JSON.parse(res.stdout) }
}

const example = readFileSync(new URL('../policy/fixtures/contract-example.yaml', import.meta.url), 'utf8')

t.test('sigil policy and sigil flows against a real server', async (t) => {
  const dir = tempDir(t)
  const server = await startServerProcess(t, { dataDir: path.join(dir, '.sigil') })
  const run = (args: string[]) => cli(server, args)
  const TD = ['--trust-domain', 'example.org']
  t.equal(run(['trust-domain', 'create', 'example.org']).code, 0)

  const empty = run(['policy', 'show', ...TD])
  t.equal(empty.code, 0, empty.stderr)
  t.match(empty.stdout, /no policy set yet \(version 0\)[\s\S]*mode: baseline/)

  const file = path.join(dir, 'policy.yaml')
  writeFileSync(file, example)
  const set = run(['policy', 'set', ...TD, '--file', file])
  t.equal(set.code, 0, set.stderr)
  t.match(set.stdout, /version 1/, 'set prints the version')
  t.equal(run(['policy', 'show', ...TD]).stdout, example, 'show prints the file as it was set')
  const shown = run(['--json', 'policy', 'show', ...TD]).json()
  t.equal(shown.version, 1)
  t.equal(shown.rules.length, 3)

  const bad = path.join(dir, 'bad.yaml')
  writeFileSync(
    bad,
    'mode: explicit\nrules:\n  - name: web-to-db\n    from: { spiffeId: "spiffe://example.org/web" }\n    to:\n      spiffeId: "spiffe://example.org/db"\n      ports: [5432, 99999]\n',
  )
  const refused = run(['policy', 'set', ...TD, '--file', bad])
  t.equal(refused.code, 1, 'a refused policy exits 1')
  t.match(refused.stderr, /POLICY_INVALID/)
  t.ok(
    refused.stderr.includes(`${bad}:7: rules[0].to.ports[1]: port 99999 is out of range 1-65535`),
    'the message names the file and the line',
    { stderr: refused.stderr },
  )
  const refusedJson = run(['--json', 'policy', 'set', ...TD, '--file', bad])
  t.equal(JSON.parse(refusedJson.stderr).error.code, 'POLICY_INVALID')
  const stale = run(['policy', 'set', ...TD, '--file', file, '--expected-version', '0'])
  t.equal(stale.code, 1)
  t.match(stale.stderr, /POLICY_VERSION_CONFLICT/)
  t.equal(run(['policy', 'set', ...TD, '--file', path.join(dir, 'missing.yaml')]).code, 2, 'a missing file')
  t.equal(run(['policy', 'set', ...TD, '--file', file, '--expected-version', 'x']).code, 2)

  const mode = run(['policy', 'mode', ...TD, 'explicit'])
  t.equal(mode.code, 0, mode.stderr)
  t.match(mode.stdout, /explicit mode \(version 2\)/)
  const after = run(['policy', 'show', ...TD]).stdout
  t.match(after, /^mode: explicit # baseline: observe/, 'the mode changed in place')
  t.ok(after.includes('# deny always wins over allow'), 'and the comments stayed')
  t.equal(run(['policy', 'mode', ...TD, 'strict']).code, 2, 'an unknown mode is a usage error')
  t.equal(
    run(['--json', 'trust-domain', 'show', 'example.org']).json().settings.policyMode,
    'explicit',
    'the trust domain shows the policy mode',
  )

  const history = run(['policy', 'history', ...TD])
  t.equal(history.code, 0, history.stderr)
  t.match(history.stdout, /VERSION\s+MODE\s+RULES/)
  t.match(history.stdout, /\n2\s+explicit\s+3\s/)
  t.match(history.stdout, /\n1\s+baseline\s+3\s/)
  t.strictSame(
    run(['--json', 'policy', 'history', ...TD])
      .json()
      .versions.map((v: { version: number }) => v.version),
    [2, 1],
  )

  // An agent, attested with a join token, reports flows over mTLS.
  const agentId = 'spiffe://example.org/sigil/agent/e2e'
  const token = run(['--json', 'token', 'create', ...TD, '--spiffe-id', agentId]).json().token
  const csr = await makeCsr()
  const anonymous = new TrustServiceClient(new URL(server.url), server.caPem)
  t.teardown(() => anonymous.close())
  const attested = await anonymous.post<{ certChain: string[] }>('/v1/agent/attest', {
    trustDomain: 'example.org',
    attestor: 'join_token',
    evidence: { token },
    csr: csr.der.toString('base64'),
  })
  const certChainPem = attested.body.certChain
    .map((b64) => derToPem(Buffer.from(b64, 'base64'), 'CERTIFICATE'))
    .join('')
  const agent = new TrustServiceClient(new URL(server.url), server.caPem, {
    certChainPem,
    keyPem: csr.keyPem,
  })
  t.teardown(() => agent.close())
  const now = Date.now()
  const flow = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    side: 'egress',
    start: now - 10_000,
    durationMs: 3,
    source: { spiffeId: 'spiffe://example.org/web', path: '/srv/web', selectors: ['k8s:ns:shop'] },
    destination: { spiffeId: 'spiffe://example.org/db', port: 5432 },
    bytesOut: 1,
    bytesIn: 2,
    verdict: 'allowed',
    rule: 'web-to-db',
    reason: 'allow rule web-to-db',
    mode: 'baseline',
    policyVersion: 1,
    ...extra,
  })
  const reported = await agent.post('/v1/agent/flows', {
    flows: [
      flow('e1'),
      flow('e2', {
        source: { path: '/usr/bin/curl' },
        destination: { fqdn: 'example.net', port: 443 },
        verdict: 'unidentified',
        rule: undefined,
        reason: 'source has no SPIFFE ID; baseline lets it through',
      }),
    ],
  })
  t.strictSame(reported.body, { accepted: 2 })

  const listed = run(['flows', 'list', ...TD, '--since', '1h'])
  t.equal(listed.code, 0, listed.stderr)
  t.match(listed.stdout, /START\s+SIDE\s+SOURCE\s+DESTINATION\s+PORT\s+VERDICT/)
  t.match(
    listed.stdout,
    /egress\s+spiffe:\/\/example\.org\/web\s+spiffe:\/\/example\.org\/db\s+5432\s+allowed\s+web-to-db/,
  )
  t.match(listed.stdout, /unidentified: \/usr\/bin\/curl\s+example\.net\s+443\s+unidentified/)
  t.equal(run(['--json', 'flows', 'list', ...TD, '--verdict', 'allowed']).json().flows.length, 1)
  t.equal(run(['flows', 'list', ...TD, '--verdict', 'maybe']).code, 2)

  const dot = run(['flows', 'graph', ...TD, '--since', '1h'])
  t.equal(dot.code, 0, dot.stderr)
  t.match(dot.stdout, /^digraph sigil_flows \{/)
  t.match(dot.stdout, /label="spiffe:\/\/example\.org\/web"/)
  t.match(dot.stdout, /color=green/)
  t.match(dot.stdout, /label="unidentified: \/usr\/bin\/curl on spiffe:\/\/example\.org\/sigil\/agent\/e2e"/)
  const graph = run(['flows', 'graph', ...TD, '--format', 'json']).json()
  t.equal(graph.edges.length, 2)
  t.equal(graph.nodes.length, 4)
  t.equal(run(['flows', 'graph', ...TD, '--format', 'svg']).code, 2)

  const dry = run(['policy', 'dry-run', ...TD])
  t.equal(dry.code, 0, dry.stderr)
  t.match(dry.stdout, /2 flows examined: 1 would be allowed, 1 would be denied/)
  t.match(
    dry.stdout,
    /unidentified: \/usr\/bin\/curl on spiffe:\/\/example\.org\/sigil\/agent\/e2e\s+example\.net\s+443\s+1/,
  )
  const recommended = run(['policy', 'recommend', ...TD, '--since', '1h'])
  t.equal(recommended.code, 0, recommended.stderr)
  t.match(recommended.stdout, /mode: explicit/)
  t.match(recommended.stdout, /spiffeId: spiffe:\/\/example\.org\/db/)
  t.match(run(['policy', 'recommend', ...TD, '--format', 'cilium']).stdout, /# not exported: rule /)
  t.equal(run(['policy', 'recommend', ...TD, '--format', 'xml']).code, 2)
})
