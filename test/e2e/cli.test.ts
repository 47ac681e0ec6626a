// The real server over HTTPS, driven by the real CLI, curl and openssl.

import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { sigilBin, startServerProcess } from '../helpers/server-process.ts'
import { opensslVerify, requireTool, tempDir } from '../helpers/tools.ts'

function cli(server: { url: string; dataDir: string }, args: string[], cwd?: string) {
  const res = spawnSync(process.execPath, [sigilBin, '--server', server.url, ...args], {
    cwd: cwd ?? path.dirname(server.dataDir),
    env: { ...process.env, SIGIL_DATA_DIR: server.dataDir, SIGIL_TOKEN: '', SIGIL_CA_BUNDLE: '' },
    encoding: 'utf8',
    timeout: 60_000,
  })
  return { code: res.status, stdout: res.stdout, stderr: res.stderr, json: () => JSON.parse(res.stdout) }
}

t.test('first start, the CLI end to end, curl and openssl as clients', async (t) => {
  const dir = tempDir(t)
  const dataDir = path.join(dir, '.sigil')
  const server = await startServerProcess(t, { dataDir })
  t.equal(statSync(path.join(dataDir, 'admin.token')).mode & 0o777, 0o600, 'admin.token is 0600')
  t.equal(statSync(path.join(dataDir, 'kek')).mode & 0o777, 0o600, 'the KEK file is 0600')
  const token = readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim()
  t.notOk(server.logs().includes(token), 'the admin token never appears in the log')
  t.match(server.logs(), /admin\.token/, 'the log names the token file')

  const created = cli(server, ['--json', 'trust-domain', 'create', 'example.org'])
  t.equal(created.code, 0, created.stderr)
  t.equal(created.json().name, 'example.org')
  const dup = cli(server, ['trust-domain', 'create', 'example.org'])
  t.equal(dup.code, 1, 'a refused request exits 1')
  t.match(dup.stderr, /TRUST_DOMAIN_EXISTS/)
  const usage = cli(server, ['trust-domain', 'create'])
  t.equal(usage.code, 2, 'a usage error exits 2')
  const badTtl = cli(server, ['token', 'create', '--trust-domain', 'example.org', '--ttl', 'soon'])
  t.equal(badTtl.code, 2, badTtl.stderr)
  t.match(cli(server, ['--help']).stdout, /trust-domain/)

  const list = cli(server, ['--json', 'trust-domain', 'list'])
  t.same(
    list.json().trustDomains.map((d: { name: string }) => d.name),
    ['example.org'],
  )
  t.match(cli(server, ['trust-domain', 'list']).stdout, /NAME\s+KEY TYPE/)

  const entry = cli(server, [
    '--json',
    'entry',
    'create',
    '--trust-domain',
    'example.org',
    '--spiffe-id',
    'spiffe://example.org/web',
    '--parent',
    'spiffe://example.org/sigil/agent/join_token/n1',
    '--selector',
    'unix:uid:1000',
    '--selector',
    'k8s:ns:prod',
    '--x509-ttl',
    '30m',
    '--dns',
    'web.example.org',
  ])
  t.equal(entry.code, 0, entry.stderr)
  const id = entry.json().id
  t.equal(entry.json().x509Ttl, 1800)
  t.equal(
    cli(server, ['--json', 'entry', 'show', id]).json().spiffeId,
    'spiffe://example.org/web',
    'show finds the trust domain by itself',
  )
  t.equal(cli(server, ['--json', 'entry', 'update', id, '--jwt-ttl', '10m']).json().jwtTtl, 600)
  t.equal(cli(server, ['--json', 'entry', 'list', '--trust-domain', 'example.org']).json().entries.length, 1)
  const badSel = cli(server, [
    'entry',
    'create',
    '--trust-domain',
    'example.org',
    '--spiffe-id',
    'spiffe://example.org/x',
    '--parent',
    'spiffe://example.org/sigil/server',
    '--selector',
    'unix:uid:abc',
  ])
  t.equal(badSel.code, 1)
  t.match(badSel.stderr, /SELECTOR_INVALID/)

  const jt = cli(server, ['--json', 'token', 'create', '--trust-domain', 'example.org', '--ttl', '10m'])
  t.equal(jt.code, 0, jt.stderr)
  t.match(jt.json().token, /^sjt_/)
  t.match(
    cli(server, ['token', 'create', '--trust-domain', 'example.org']).stdout,
    /sigil agent run .*--join-token sjt_/,
  )

  const out = path.join(dir, 'svid')
  const minted = cli(server, [
    'svid',
    'mint',
    'x509',
    '--spiffe-id',
    'spiffe://example.org/web',
    '--ttl',
    '10m',
    '--dns',
    'localhost',
    '--out',
    out,
  ])
  t.equal(minted.code, 0, minted.stderr)
  t.equal(statSync(path.join(out, 'svid.key')).mode & 0o777, 0o600, 'the key the user asked for is 0600')
  const chain = readFileSync(path.join(out, 'svid.pem'), 'utf8')
  const bundle = readFileSync(path.join(out, 'bundle.pem'), 'utf8')
  t.ok(opensslVerify(dir, chain, bundle, 'sslserver').ok)

  const jwt = cli(server, [
    'svid',
    'mint',
    'jwt',
    '--spiffe-id',
    'spiffe://example.org/web',
    '--audience',
    'db',
  ])
  t.equal(jwt.code, 0, jwt.stderr)
  t.equal(jwt.stdout.trim().split('.').length, 3)
  const spiffe = cli(server, [
    '--json',
    'bundle',
    'show',
    '--trust-domain',
    'example.org',
    '--format',
    'spiffe',
  ])
  t.ok(spiffe.json().keys.some((k: { use: string }) => k.use === 'jwt-svid'))
  t.equal(cli(server, ['bundle', 'show', '--trust-domain', 'example.org']).stdout.trim(), bundle.trim())
  t.match(cli(server, ['audit', '--trust-domain', 'example.org']).stdout, /svid\.mint-jwt/)

  // curl, trusting server-ca.pem.
  requireTool('curl', 'apt-get install curl')
  const viaCurl = execFileSync(
    'curl',
    [
      '-sS',
      '--cacert',
      path.join(dataDir, 'server-ca.pem'),
      '-H',
      `Authorization: Bearer ${token}`,
      `${server.url}/v1/trust-domains`,
    ],
    { encoding: 'utf8' },
  )
  t.same(
    JSON.parse(viaCurl).trustDomains.map((d: { name: string }) => d.name),
    ['example.org'],
  )
  const noToken = spawnSync(
    'curl',
    [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--cacert',
      path.join(dataDir, 'server-ca.pem'),
      `${server.url}/v1/trust-domains`,
    ],
    { encoding: 'utf8' },
  )
  t.equal(noToken.stdout, '401')

  // TLS: 1.2 and 1.3 only.
  const tls = (flag: string) =>
    spawnSync(
      'openssl',
      [
        's_client',
        flag,
        '-connect',
        server.url.replace('https://', ''),
        '-CAfile',
        path.join(dataDir, 'server-ca.pem'),
        '-verify_return_error',
      ],
      { input: '', encoding: 'utf8', timeout: 20_000 },
    )
  t.equal(tls('-tls1_2').status, 0, 'TLS 1.2 is accepted')
  t.equal(tls('-tls1_3').status, 0, 'TLS 1.3 is accepted')
  t.not(tls('-tls1_1').status, 0, 'TLS 1.1 is refused')

  // mTLS between openssl s_server and s_client with two minted SVIDs.
  const out2 = path.join(dir, 'svid2')
  t.equal(
    cli(server, ['svid', 'mint', 'x509', '--spiffe-id', 'spiffe://example.org/client', '--out', out2]).code,
    0,
  )
  const port = 20000 + Math.floor(Math.random() * 20000)
  const { spawn } = await import('node:child_process')
  const srv = spawn(
    'openssl',
    [
      's_server',
      '-accept',
      `127.0.0.1:${port}`,
      '-cert',
      path.join(out, 'svid.pem'),
      '-cert_chain',
      path.join(out, 'svid.pem'),
      '-key',
      path.join(out, 'svid.key'),
      '-CAfile',
      path.join(out, 'bundle.pem'),
      '-Verify',
      '2',
      '-verify_return_error',
      '-naccept',
      '1',
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  )
  t.teardown(() => srv.kill())
  let srvOut = ''
  srv.stdout.on('data', (c) => {
    srvOut += c
  })
  await new Promise((r) => setTimeout(r, 800))
  const client = spawnSync(
    'openssl',
    [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-cert',
      path.join(out2, 'svid.pem'),
      '-cert_chain',
      path.join(out2, 'svid.pem'),
      '-key',
      path.join(out2, 'svid.key'),
      '-CAfile',
      path.join(out2, 'bundle.pem'),
      '-verify_return_error',
    ],
    { input: 'hello over mTLS\n', encoding: 'utf8', timeout: 20_000 },
  )
  t.equal(client.status, 0, client.stderr)
  t.match(client.stdout, /Verify return code: 0 \(ok\)/)
  await new Promise((r) => setTimeout(r, 300))
  t.match(srvOut, /hello over mTLS/, 's_server received the data over mutual TLS')
})
