// The web console end to end in real headless Chromium: a real trust service (child process) with
// single sign-on through a real OpenID Connect provider on loopback, a real agent started with the join
// token made in the console, flows from the agent's proxy (curl through its egress listener), and every
// control found by role and accessible name, as a person with a screen reader would find it. Screenshots
// of each page go to test/artifacts/console/; the graph's also to docs/images/ for the README. The
// measured figures (first-load JavaScript, time to the overview, the 500-node graph) are printed; only
// the 300 KB JavaScript budget is asserted (a size; timings are reported, never asserted).

import { execFile, execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { copyFileSync, existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { promisify } from 'node:util'
import type { BrowserContext, Page } from 'playwright-core'
import t from 'tap'
import { startAgentProcess } from '../helpers/agent-process.ts'
import { artifactsDir, launchChromium, requireChromium } from '../helpers/browser.ts'
import { attestFlowReporter, flow, syntheticFlows } from '../helpers/flow-reporter.ts'
import { startOidcIssuer } from '../helpers/oidc-issuer.ts'
import { freePort, sha256File } from '../helpers/proxy.ts'
import { startServerProcess } from '../helpers/server-process.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'
import { until } from '../helpers/wait.ts'

const run = promisify(execFile)
const root = path.resolve(import.meta.dirname, '../..')
const TD = 'example.org'
const NODE = `spiffe://${TD}/sigil/agent/join_token/node-1`
const CURL_ID = `spiffe://${TD}/curl`
const XSS = '<img src=x onerror=alert(1)>'

t.setTimeout(300_000)

// Browser globals for the functions that run in the page (page.evaluate); this file is checked as Node code.
declare const document: any
declare const window: any
declare const navigator: any

t.test('the console in Chromium', async (t) => {
  requireChromium()
  requireTool('curl', 'apt-get install -y curl')
  // The build the server serves (a second or two; services/console/dist).
  execFileSync('npm', ['run', '--silent', 'build:console'], { cwd: root, stdio: 'inherit' })
  const shots = artifactsDir('console')
  const shot = (page: Page, name: string) =>
    page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true })

  const dir = tempDir(t)
  const issuer = await startOidcIssuer(t, {
    users: [
      { sub: 'alice', email: 'alice@example.com', name: 'Alice', groups: ['sigil:*:admin'] },
      { sub: 'victor', email: 'victor@example.com', name: 'Victor', groups: [`sigil:${TD}:viewer`] },
      { sub: 'nora', email: 'nora@example.com', name: 'Nora', groups: ['marketing'] },
    ],
  })
  const configFile = path.join(dir, 'sigil.yaml')
  writeFileSync(
    configFile,
    [
      'console:',
      '  sessionTtl: 1h',
      '  oidc:',
      `    issuer: ${issuer.issuer}`,
      `    clientId: ${issuer.clientId}`,
      `    clientSecret: ${issuer.clientSecret}`,
      '    rolesClaim: groups',
      '    allowInsecureLoopbackIssuer: true',
      '',
    ].join('\n'),
  )
  const server = await startServerProcess(t, {
    dataDir: path.join(dir, '.sigil'),
    args: ['--config', configFile],
  })
  const api = server.client()
  t.teardown(() => api.close())
  const browser = await launchChromium(t, server.url, server.caPem)

  const problems: string[] = []
  async function newPage(context: BrowserContext): Promise<Page> {
    const page = await context.newPage()
    page.setDefaultTimeout(20_000)
    // A script the page never meant to run would show itself as a dialog; CSP violations as errors.
    page.on('dialog', (d) => {
      problems.push(`dialog: ${d.message()}`)
      void d.dismiss()
    })
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
    page.on('console', (m) => {
      if (m.type() === 'error' && !/the server responded with a status of 4\d\d/.test(m.text()))
        problems.push(`console: ${m.text()}`)
    })
    return page
  }
  async function signInSso(page: Page, user: string): Promise<void> {
    await page.goto(server.url)
    await page.getByRole('link', { name: 'Sign in with single sign-on' }).click()
    await page.getByRole('textbox', { name: 'Username' }).fill(user)
    await page.getByRole('button', { name: 'Sign in' }).click()
  }
  const newContext = () => browser.newContext({ viewport: { width: 1400, height: 900 } })

  const context = await newContext()
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url })
  const page = await newPage(context)
  const nav = (name: string) =>
    page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name, exact: true })

  await t.test('sign in through the OpenID Connect provider', async (t) => {
    await page.goto(server.url)
    await page.getByRole('heading', { name: 'Sign in to Sigil' }).waitFor()
    await shot(page, '01-sign-in')
    await page.getByRole('link', { name: 'Sign in with single sign-on' }).click()
    await page.getByRole('textbox', { name: 'Username' }).fill('alice')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByText('Signed in as').waitFor()
    t.ok(await page.getByText('alice@example.com').isVisible(), 'the user is named')
    await page.getByRole('heading', { name: 'Trust domains' }).waitFor()
    t.ok(issuer.requests.includes('/token'), 'the code was exchanged at the provider')
  })

  await t.test('create and delete trust domains; bad names are refused before submitting', async (t) => {
    const name = page.getByRole('textbox', { name: 'Trust domain name' })
    await name.fill('Not Valid!')
    await page.getByRole('button', { name: 'Create trust domain' }).click()
    await page.getByText('Use lowercase letters, digits, dots, dashes and underscores only').waitFor()
    t.equal(await name.getAttribute('aria-invalid'), 'true', 'the field is marked invalid')
    for (const td of [TD, 'scratch.example']) {
      await name.fill(td)
      await page.getByRole('button', { name: 'Create trust domain' }).click()
      await page.getByText(`Trust domain ${td} created.`).waitFor()
    }
    await name.fill(TD)
    await page.getByRole('button', { name: 'Create trust domain' }).click()
    await page.getByText(/already exists/).waitFor()
    t.pass('the server refusal is shown under the name')

    await page.getByRole('button', { name: 'Delete trust domain scratch.example' }).click()
    const dialog = page.getByRole('dialog', { name: 'Delete trust domain scratch.example?' })
    await dialog.getByText('0 registration entries').waitFor()
    t.ok(await dialog.getByText(/its root CA and bundle/).isVisible(), 'the dialog names what will be lost')
    const confirm = dialog.getByRole('button', { name: 'Delete scratch.example and everything in it' })
    t.ok(await confirm.isDisabled(), 'not before the name is typed')
    await dialog.getByRole('textbox', { name: 'Type scratch.example to confirm' }).fill('scratch.example')
    await confirm.click()
    await dialog.waitFor({ state: 'detached' })
    await page.getByRole('rowheader', { name: 'scratch.example' }).waitFor({ state: 'detached' })
    await shot(page, '02-trust-domains')
  })

  const curl = realpathSync('/usr/bin/curl')
  await t.test(
    'registration entries: the selector builder, code-DNA of an uploaded binary, refusals',
    async (t) => {
      await page.goto(`${server.url}/#/td/${TD}/entries`)
      await page.getByRole('heading', { name: `Registration entries of ${TD}` }).waitFor()
      await page.getByRole('button', { name: 'Create entry' }).click()
      let dialog = page.getByRole('dialog', { name: 'Create a registration entry' })
      await dialog.getByRole('textbox', { name: 'SPIFFE ID' }).fill('spiffe://other.org/curl')
      await dialog.getByRole('button', { name: 'Create entry' }).click()
      await dialog
        .getByText(`A SPIFFE ID of this trust domain with a path, e.g. spiffe://${TD}/web`)
        .waitFor()
      await dialog.getByText('Add at least one selector').waitFor()
      t.pass('the form says which fields are wrong before anything is sent')

      await dialog.getByRole('textbox', { name: 'SPIFFE ID' }).fill(CURL_ID)
      await dialog.getByRole('combobox', { name: 'Parent ID' }).fill(NODE)
      await dialog.getByRole('combobox', { name: 'Selector type' }).selectOption('unix')
      await dialog.getByRole('combobox', { name: 'Selector key' }).selectOption('uid')
      await dialog.getByRole('textbox', { name: 'Selector value' }).fill('root')
      await dialog.getByRole('button', { name: 'Add selector' }).click()
      await dialog.getByText(/the value of unix:uid must be a non-negative integer/).waitFor()
      t.pass("the builder refuses a selector the server's parser would")
      await dialog.getByRole('combobox', { name: 'Selector key' }).selectOption('sha256')
      await dialog.getByLabel('Executable for the code-DNA selector').setInputFiles(curl)
      const digest = sha256File(curl)
      await dialog.getByText(`sha256 of ${path.basename(curl)}: ${digest}`).waitFor()
      t.pass('the sha256 of the uploaded binary is shown')
      await dialog.getByRole('button', { name: 'Add selector' }).click()
      await dialog.getByRole('button', { name: `Remove selector unix:sha256:${digest}` }).waitFor()
      await shot(page, '03-entry-form')
      await dialog.getByRole('button', { name: 'Create entry' }).click()
      await page.getByText(`Created entry ${CURL_ID}.`).waitFor()

      await page.getByRole('button', { name: 'Create entry' }).click()
      dialog = page.getByRole('dialog', { name: 'Create a registration entry' })
      await dialog.getByRole('textbox', { name: 'SPIFFE ID' }).fill(`spiffe://${TD}/xss`)
      await dialog.getByRole('combobox', { name: 'Parent ID' }).fill(`spiffe://${TD}/nowhere`)
      await dialog.getByRole('combobox', { name: 'Selector key' }).selectOption('user')
      await dialog.getByRole('textbox', { name: 'Selector value' }).fill(XSS)
      await dialog.getByRole('button', { name: 'Add selector' }).click()
      await dialog.getByRole('button', { name: 'Create entry' }).click()
      await dialog.getByText('The server refused the entry:').waitFor()
      const parent = dialog.getByRole('combobox', { name: 'Parent ID' })
      t.equal(
        await parent.getAttribute('aria-invalid'),
        'true',
        "the server's refusal marks the parent field",
      )
      t.match(await dialog.locator('.field.invalid .field-error').first().textContent(), /parentId/)
      await parent.fill(NODE)
      await dialog.getByRole('button', { name: 'Create entry' }).click()
      await page.getByText(`Created entry spiffe://${TD}/xss.`).waitFor()
      await page.getByText(`unix:user:${XSS}`, { exact: true }).waitFor()
      t.equal(await page.locator('img[src="x"]').count(), 0, 'the name is text, never markup')

      await page.getByRole('button', { name: `Edit entry spiffe://${TD}/xss` }).click()
      dialog = page.getByRole('dialog', { name: `Edit entry spiffe://${TD}/xss` })
      await dialog.getByRole('textbox', { name: 'X509-SVID TTL' }).fill('soon')
      await dialog.getByRole('button', { name: 'Save entry' }).click()
      await dialog.getByText('A duration such as 30m or 1h, or empty for the default').waitFor()
      await dialog.getByRole('textbox', { name: 'X509-SVID TTL' }).fill('30m')
      await dialog.getByRole('button', { name: 'Save entry' }).click()
      await page.getByText(`Saved entry spiffe://${TD}/xss.`).waitFor()
      await page.getByRole('searchbox', { name: 'Search entries' }).fill('xss')
      await page.getByText('1 of 2 entries').waitFor()
      await page.getByRole('searchbox', { name: 'Search entries' }).fill('')
      await shot(page, '04-entries')
    },
  )

  let joinToken = ''
  await t.test('join tokens: shown once, copyable, with the install command; revoke', async (t) => {
    await nav('Join tokens').click()
    await page.getByRole('textbox', { name: 'Agent SPIFFE ID (optional)' }).fill(NODE)
    await page.getByRole('button', { name: 'Create join token' }).click()
    const region = page.getByRole('region', { name: 'New join token' })
    await region.waitFor()
    joinToken = await region.getByRole('textbox', { name: 'Join token' }).inputValue()
    t.match(joinToken, /\S{20,}/, 'the token is shown')
    const command = await region.getByRole('textbox', { name: 'Agent install command' }).inputValue()
    t.match(command, new RegExp(`--trust-domain ${TD.replace('.', '\\.')}`))
    t.ok(command.includes(`--join-token ${joinToken}`), 'the install command carries the token')
    t.ok(command.includes(`--server ${server.url}`))
    await region.getByRole('button', { name: 'Copy command' }).click()
    await region.getByText('Copied.').waitFor()
    t.equal(await page.evaluate(() => navigator.clipboard.readText()), command, 'copied to the clipboard')
    await shot(page, '05-join-tokens')

    await page.getByRole('textbox', { name: 'Agent SPIFFE ID (optional)' }).fill('')
    await page.getByRole('button', { name: 'Create join token' }).click()
    const spare = page.getByRole('row').filter({ hasText: 'chosen at attestation' })
    await spare.first().waitFor()
    const before = await spare.count()
    await spare
      .first()
      .getByRole('button', { name: /^Revoke join token/ })
      .click()
    await page
      .getByRole('dialog', { name: 'Revoke this join token?' })
      .getByRole('button', { name: 'Revoke token' })
      .click()
    await page.getByText('Join token revoked.').waitFor()
    await until('the list without the revoked token', async () => (await spare.count()) === before - 1)
    t.pass('the revoked token is gone from the list')
  })

  const egress = await freePort()
  let agentLog = () => ''
  const top = t
  await t.test('a real agent started with that token appears', async (t) => {
    const proxyConfig = path.join(dir, 'proxy.yaml')
    writeFileSync(proxyConfig, `egress:\n  listen: 127.0.0.1:${egress}\n`)
    const agentDir = path.join(dir, 'agent')
    mkdirSync(agentDir)
    const agent = startAgentProcess({
      serverUrl: server.url,
      caPem: server.caPem,
      trustDomain: TD,
      joinToken,
      dir: agentDir,
      socket: path.join(agentDir, 'agent.sock'),
      args: ['--proxy-config', proxyConfig],
    })
    // The agent outlives this subtest: the next ones send traffic through its proxy.
    top.teardown(() => agent.stop())
    agentLog = () => agent.log()
    await nav('Agents').click()
    await page.getByRole('rowheader', { name: NODE }).waitFor({ timeout: 30_000 })
    t.ok(await page.getByRole('cell', { name: 'join_token' }).first().isVisible(), 'the attestor is shown')
    await until('the agent proxy', () => /Sigil agent proxy listening/.test(agent.log()), 30_000)
    await shot(page, '06-agents')
  })

  const web = http.createServer((_req, res) => res.end('hello from the outside\n'))
  web.listen(0, '127.0.0.1')
  await once(web, 'listening')
  t.teardown(() => web.close())
  const webPort = (web.address() as { port: number }).port
  const viaProxy = (bin: string, args: string[] = []) =>
    run(bin, [
      ...args,
      '-sS',
      '-p',
      '-x',
      `http://127.0.0.1:${egress}`,
      `http://localhost:${webPort}/`,
    ]).catch((e: { stderr: string }) => ({ stdout: '', stderr: e.stderr }))
  /** A process with another code-DNA than curl's: node making the same CONNECT through the proxy. */
  const unidentified = () =>
    new Promise<void>((resolve) => {
      const child = spawn(process.execPath, [
        '-e',
        `const s=require('net').connect(${egress},'127.0.0.1',()=>s.write('CONNECT localhost:${webPort} HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n'));s.on('data',()=>{});s.on('end',()=>s.destroy());setTimeout(()=>s.destroy(),1500)`,
      ])
      child.on('exit', () => resolve())
    })
  type FlowView = {
    source: { spiffeId?: string; path?: string; sha256?: string }
    destination: { fqdn?: string }
    verdict: string
    rule?: string
  }
  const flows = async (q = '') =>
    (await api.request<{ flows: FlowView[] }>('GET', `/v1/trust-domains/${TD}/flows?limit=500${q}`)).flows

  await t.test('flows from the proxy are on the graph; an edge shows its flows and processes', async (t) => {
    await until(
      'a flow of curl, identified by its code-DNA',
      async () => {
        await viaProxy('curl')
        return (await flows()).find(
          (f) => f.source.spiffeId === CURL_ID && f.destination.fqdn === 'localhost',
        )
      },
      30_000,
      500,
    ).catch(async (err) => {
      t.comment(`flows: ${JSON.stringify(await flows())}\nagent: ${agentLog().slice(-4000)}`)
      throw err
    })
    await unidentified()
    await until('the unidentified flow', async () =>
      (await flows()).find((f) => f.source.path === realpathSync(process.execPath) && !f.source.spiffeId),
    )
    // A record whose process path is markup, reported like any agent's.
    const reporter = await attestFlowReporter(t, server, api, TD, 'reporter')
    await reporter.report([
      flow({
        source: { path: `/opt/${XSS}` },
        destination: { spiffeId: CURL_ID, port: 8443 },
        verdict: 'unidentified',
      }),
    ])

    await nav('Network graph').click()
    await page.locator('canvas[data-rendered="true"]').waitFor()
    const graph = await api.request<{ edges: Array<{ id: string; source: string; target: string }> }>(
      'GET',
      `/v1/trust-domains/${TD}/flows/graph`,
    )
    const edge = graph.edges.find((e) => e.source === CURL_ID && e.target === 'fqdn:localhost')!
    t.ok(edge, 'the curl -> localhost edge is in the graph')
    await page.getByText('Layout settled.').waitFor()
    const point = await page.evaluate(
      (id) =>
        (
          document.querySelector('canvas') as unknown as {
            sigilGraph: { edgePoint(id: string): { x: number; y: number } }
          }
        ).sigilGraph.edgePoint(id),
      edge.id,
    )
    await page.mouse.click(point.x, point.y)
    const details = page.getByRole('complementary', { name: 'Flows of this edge' })
    await details.waitFor()
    await details.getByText(curl, { exact: true }).waitFor()
    await details.getByText(sha256File(curl)).waitFor()
    t.pass('a click on the edge shows the process and its code-DNA')
    await page
      .getByText(`unidentified: /opt/${XSS} on spiffe://${TD}/sigil/agent/join_token/reporter`)
      .first()
      .waitFor()
    t.equal(await page.locator('img[src="x"]').count(), 0, 'a markup path is text on the graph page')
    await page.getByRole('checkbox', { name: 'Allowed' }).uncheck()
    await page.getByText(/of \d+ edges in the last/).waitFor()
    t.match(
      await page.getByRole('status').filter({ hasText: 'edges in the last' }).textContent(),
      /^\d+ of \d+ nodes, [0-2] of 3 edges/,
    )
    await page.getByRole('checkbox', { name: 'Allowed' }).check()
    await shot(page, '07-graph')
  })

  await t.test(
    'policy: validation as you type, recommendation as a diff, dry run, explicit mode',
    async (t) => {
      await nav('Policy').click()
      const editor = page.getByRole('textbox', { name: 'Policy file' })
      await editor.fill(
        `mode: baseline\nrules:\n  - name: broken\n    from: { spiffeId: "${CURL_ID}" }\n    to: { fqdn: localhost, ports: [99999] }\n`,
      )
      await page.getByText(/^Invalid: line 5, rules\[0\]\.to\.ports\[0\]/).waitFor()
      t.equal(await editor.getAttribute('aria-invalid'), 'true')
      t.ok(
        await page.getByRole('button', { name: 'Save policy' }).isDisabled(),
        'an invalid policy cannot be saved',
      )
      await page.getByRole('button', { name: 'Discard changes' }).click()
      await page.getByText(/^Valid: 0 rules, mode baseline\./).waitFor()

      await page.getByRole('button', { name: 'Show recommended policy' }).click()
      const diff = page.getByRole('table', { name: /Changes from the current policy/ })
      await diff.waitFor()
      t.ok(await diff.getByRole('cell', { name: 'added' }).first().isVisible(), 'added lines are marked')
      t.ok(await diff.getByText(/fqdn: localhost/).isVisible(), 'the rule for the observed flow')
      await shot(page, '08-policy-recommendation')
      await page.getByRole('button', { name: 'Apply recommended policy' }).click()
      await page.getByText(/^Version 1, set /).waitFor()

      await page.getByRole('button', { name: 'Check what would break' }).click()
      const result = page.getByRole('region', { name: 'Dry run result' })
      await result.waitFor()
      const refused = result.getByRole('table', { name: 'What explicit mode would refuse' })
      await refused.getByText(realpathSync(process.execPath)).first().waitFor()
      const sources = await refused.locator('tbody tr td:first-child').allTextContents()
      t.notOk(
        sources.includes(CURL_ID),
        `curl is allowed by the applied rule (refused: ${sources.join(', ')})`,
      )
      await shot(page, '09-policy-dry-run')
      await result.getByRole('button', { name: 'Switch to explicit mode' }).click()
      await page.getByText('Running mode: explicit').waitFor()
      const policy = await api.request<{ mode: string; version: number }>(
        'GET',
        `/v1/trust-domains/${TD}/policy`,
      )
      t.equal(policy.mode, 'explicit', 'the server runs explicit mode')
      t.equal(policy.version, 2)

      // Explicit mode at work: the node process is now refused, and the graph shows it in red.
      await until(
        'a denied flow of the unidentified process',
        async () => {
          await unidentified()
          return (await flows('&verdict=denied')).find(
            (f) => f.source.path === realpathSync(process.execPath),
          )
        },
        20_000,
        500,
      )
      await viaProxy('curl')
    },
  )

  await t.test('bundle, audit log, settings and the overview', async (t) => {
    await nav('Bundle').click()
    const pem = await page.getByRole('textbox', { name: 'Bundle in PEM format' }).inputValue()
    t.match(pem, /^-----BEGIN CERTIFICATE-----/)
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download SPIFFE bundle' }).click(),
    ])
    t.equal(download.suggestedFilename(), `${TD}.bundle.json`)
    const saved = path.join(dir, 'bundle.json')
    await download.saveAs(saved)
    const jwks = JSON.parse(execFileSync('cat', [saved], { encoding: 'utf8' }))
    t.ok(
      jwks.keys.some((k: { use: string }) => k.use === 'x509-svid'),
      'the SPIFFE bundle downloads',
    )
    await shot(page, '10-bundle')

    await nav('Audit log').click()
    await page.getByRole('rowheader', { name: 'entry.create' }).first().waitFor()
    t.ok(
      await page
        .getByRole('cell', { name: `oidc:${issuer.issuer}#alice (alice@example.com)` })
        .first()
        .isVisible(),
      'the audit log names the user',
    )
    t.ok(await page.getByRole('rowheader', { name: 'policy.mode' }).isVisible())
    await shot(page, '11-audit')

    await nav('Settings').click()
    const def = page.getByRole('textbox', { name: 'X509-SVID default TTL' })
    await def.fill('2d')
    await page.getByRole('button', { name: 'Save settings' }).click()
    await page.getByText('The default must not exceed the maximum.').waitFor()
    await def.fill('30m')
    await page.getByRole('button', { name: 'Save settings' }).click()
    await page.getByText('Settings saved.').waitFor()
    await shot(page, '12-settings')

    await nav('Overview').click()
    await page.locator('section[data-ready="true"]').waitFor()
    const agents = page.getByRole('region', { name: 'Agents connected' })
    t.match(await agents.textContent(), /2 of 2/, 'the real agent and the reporter')
    t.match(await page.getByRole('region', { name: 'Denied flows, last hour' }).textContent(), /[1-9]/)
    t.match(await page.getByRole('region', { name: 'Next CA rotation' }).textContent(), /in \d+ h/)
    t.match(
      await page.getByRole('img', { name: /SVIDs issued per hour/ }).getAttribute('aria-label'),
      /: .* [1-9]/,
      'the chart counts the SVIDs the agent got',
    )
    await shot(page, '13-overview')
  })

  await t.test('a viewer finds every mutating control refused by the API', async (t) => {
    const before = {
      entries: (await api.request<{ entries: unknown[] }>('GET', `/v1/trust-domains/${TD}/entries`)).entries
        .length,
      policy: (await api.request<{ version: number }>('GET', `/v1/trust-domains/${TD}/policy`)).version,
      tokens: (await api.request<{ joinTokens: unknown[] }>('GET', `/v1/trust-domains/${TD}/join-tokens`))
        .joinTokens.length,
    }
    await api.request('POST', `/v1/trust-domains/${TD}/join-tokens`, {})
    // A flow no rule covers yet, so the recommendation differs from the running policy.
    const reporter = await attestFlowReporter(t, server, api, TD, 'viewer-prelude')
    await reporter.report([
      flow({
        source: { spiffeId: `spiffe://${TD}/xss` },
        destination: { spiffeId: CURL_ID, port: 8443 },
        verdict: 'allowed',
      }),
    ])
    const ctx = await newContext()
    const v = await newPage(ctx)
    await signInSso(v, 'victor')
    await v.getByRole('heading', { name: `Overview of ${TD}` }).waitFor()
    t.ok(await v.getByText('victor@example.com').isVisible())
    const refusal = (where: Page | ReturnType<Page['getByRole']>) =>
      where
        .getByRole('alert')
        .filter({ hasText: `user "victor@example.com" has no admin role on trust domain "${TD}"` })
    const refused: string[] = []

    await v.goto(`${server.url}/#/trust-domains`)
    await v.getByRole('textbox', { name: 'Trust domain name' }).fill('viewer.example')
    await v.getByRole('button', { name: 'Create trust domain' }).click()
    await v.getByRole('alert').filter({ hasText: 'is not an installation admin' }).waitFor()
    refused.push('create trust domain')
    await v.getByRole('button', { name: `Delete trust domain ${TD}` }).click()
    let dialog = v.getByRole('dialog', { name: `Delete trust domain ${TD}?` })
    await dialog.getByRole('textbox', { name: `Type ${TD} to confirm` }).fill(TD)
    await dialog.getByRole('button', { name: `Delete ${TD} and everything in it` }).click()
    await refusal(dialog).waitFor()
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    refused.push('delete trust domain')

    await v.goto(`${server.url}/#/td/${TD}/settings`)
    await v
      .getByRole('note')
      .filter({ hasText: `You are a viewer of ${TD}` })
      .waitFor()
    await v.getByRole('button', { name: 'Save settings' }).click()
    await refusal(v).waitFor()
    refused.push('trust domain settings')

    await v.goto(`${server.url}/#/td/${TD}/entries`)
    await v.getByRole('button', { name: 'Create entry' }).click()
    dialog = v.getByRole('dialog', { name: 'Create a registration entry' })
    await dialog.getByRole('textbox', { name: 'SPIFFE ID' }).fill(`spiffe://${TD}/viewer-made`)
    await dialog.getByRole('combobox', { name: 'Parent ID' }).fill(NODE)
    await dialog.getByRole('textbox', { name: 'Selector value' }).fill('1000')
    await dialog.getByRole('combobox', { name: 'Selector key' }).selectOption('uid')
    await dialog.getByRole('button', { name: 'Add selector' }).click()
    await dialog.getByRole('button', { name: 'Create entry' }).click()
    await refusal(dialog).waitFor()
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    refused.push('create entry')
    await v.getByRole('button', { name: `Edit entry spiffe://${TD}/xss` }).click()
    dialog = v.getByRole('dialog', { name: `Edit entry spiffe://${TD}/xss` })
    await dialog.getByRole('button', { name: 'Save entry' }).click()
    await refusal(dialog).waitFor()
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    refused.push('edit entry')
    await v.getByRole('button', { name: `Delete entry spiffe://${TD}/xss` }).click()
    dialog = v.getByRole('dialog', { name: 'Delete this registration entry?' })
    await dialog.getByRole('button', { name: 'Delete entry' }).click()
    await refusal(dialog).waitFor()
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    refused.push('delete entry')

    await v.goto(`${server.url}/#/td/${TD}/join-tokens`)
    await v.getByRole('button', { name: 'Create join token' }).click()
    await refusal(v).waitFor()
    refused.push('create join token')
    await v
      .getByRole('button', { name: /^Revoke join token/ })
      .first()
      .click()
    dialog = v.getByRole('dialog', { name: 'Revoke this join token?' })
    await dialog.getByRole('button', { name: 'Revoke token' }).click()
    await refusal(dialog).waitFor()
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    refused.push('revoke join token')

    await v.goto(`${server.url}/#/td/${TD}/agents`)
    for (const [button, confirm, title] of [
      ['Ban', 'Ban agent', 'Ban this agent?'],
      ['Evict', 'Evict agent', 'Evict this agent?'],
    ] as const) {
      await v.getByRole('button', { name: `${button} agent ${NODE}` }).click()
      dialog = v.getByRole('dialog', { name: title })
      await dialog.getByRole('button', { name: confirm }).click()
      await refusal(dialog).waitFor()
      await dialog.getByRole('button', { name: 'Cancel' }).click()
      refused.push(`${button.toLowerCase()} agent`)
    }

    await v.goto(`${server.url}/#/td/${TD}/policy`)
    const editor = v.getByRole('textbox', { name: 'Policy file' })
    await editor.fill(`${await editor.inputValue()}# a viewer's comment\n`)
    await v.getByText(/^Valid: /).waitFor()
    await v.getByRole('button', { name: 'Save policy' }).click()
    await refusal(v.getByRole('region', { name: 'Policy file' })).waitFor()
    refused.push('save policy')
    await v.getByRole('button', { name: 'Switch to baseline mode' }).click()
    await refusal(v.getByRole('region', { name: 'Mode' })).waitFor()
    refused.push('switch mode')
    await v.getByRole('button', { name: 'Show recommended policy' }).click()
    const recommended = v.getByRole('region', { name: 'Recommended policy' })
    await recommended.getByRole('table', { name: /Changes from the current policy/ }).waitFor()
    await recommended.getByRole('button', { name: 'Apply recommended policy' }).click()
    await refusal(recommended).waitFor()
    refused.push('apply recommended policy')
    await shot(v, '14-viewer-refused')
    t.comment(`refused for the viewer: ${refused.join(', ')}`)
    t.equal(refused.length, 13, 'every mutating control was tried')

    const after = {
      entries: (await api.request<{ entries: unknown[] }>('GET', `/v1/trust-domains/${TD}/entries`)).entries
        .length,
      policy: (await api.request<{ version: number }>('GET', `/v1/trust-domains/${TD}/policy`)).version,
      tokens: (await api.request<{ joinTokens: unknown[] }>('GET', `/v1/trust-domains/${TD}/join-tokens`))
        .joinTokens.length,
    }
    t.same(after, { ...before, tokens: before.tokens + 1 }, 'nothing the viewer tried changed anything')
    await ctx.close()
  })

  await t.test('no role, forged sessions, a wrong audience, a missing CSRF token, sign-out', async (t) => {
    const ctx = await newContext()
    const n = await newPage(ctx)
    await signInSso(n, 'nora')
    await n.getByRole('heading', { name: 'No access' }).waitFor()
    await n
      .getByText(
        'you signed in as nora@example.com, but your account has no access to any trust domain; ask an administrator',
      )
      .waitFor()
    await shot(n, '15-no-role')
    await n.getByRole('link', { name: 'Sign out' }).click()
    await n.getByRole('heading', { name: 'Sign in to Sigil' }).waitFor()
    t.pass('a user without a role is told so and can go back to sign-in')

    await ctx.addCookies([
      {
        name: '__Host-sigil-session',
        value: 'forged.value.that.is.fake',
        url: server.url,
        secure: true,
        httpOnly: true,
        sameSite: 'Strict',
      },
    ])
    await n.goto(server.url)
    await n.getByRole('alert').filter({ hasText: 'Your session is no longer valid.' }).waitFor()
    t.ok(
      await n.getByRole('link', { name: 'Sign in with single sign-on' }).isVisible(),
      'with a way back to sign-in',
    )

    issuer.tamperNext = 'audience'
    await n.getByRole('link', { name: 'Sign in with single sign-on' }).click()
    await n.getByRole('textbox', { name: 'Username' }).fill('alice')
    await n.getByRole('button', { name: 'Sign in' }).click()
    await n.getByRole('heading', { name: 'Sign-in failed' }).waitFor()
    t.match(await n.getByRole('alert').textContent(), /aud/, 'the page says the audience was wrong')
    await shot(n, '16-sign-in-failed')
    await n.getByRole('link', { name: 'Back to sign-in' }).click()
    await n.getByRole('heading', { name: 'Sign in to Sigil' }).waitFor()
    await ctx.close()

    const csrf = await page.evaluate(async () => {
      const res = await fetch('/v1/trust-domains', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'csrf.example' }),
      })
      return { status: res.status, body: (await res.json()) as any }
    })
    t.equal(csrf.status, 403)
    t.equal(csrf.body.error.code, 'CSRF_TOKEN_INVALID', 'a change without the CSRF token is refused')
  })

  await t.test('performance: first load, the overview, a graph of 500 nodes and 5,000 edges', async (t) => {
    const perf = 'perf.example'
    await api.request('POST', '/v1/trust-domains', { name: perf })
    const reporter = await attestFlowReporter(t, server, api, perf, 'load')
    const generated = syntheticFlows(perf, { workloads: 400, externals: 50, unidentified: 50, edges: 5000 })
    await reporter.report(generated)
    const shape = await api.request<{ nodes: unknown[]; edges: unknown[] }>(
      'GET',
      `/v1/trust-domains/${perf}/flows/graph`,
    )
    t.equal(shape.edges.length, 5000, '5,000 edges')
    t.ok(shape.nodes.length >= 495 && shape.nodes.length <= 500, `${shape.nodes.length} nodes`)

    // A cold first load: a fresh browser cache with the signed-in session's cookie.
    const ctx = await newContext()
    await ctx.addCookies(await context.cookies())
    const p = await newPage(ctx)
    await p.goto(`${server.url}/#/td/${perf}/overview`)
    await p.locator('section[data-ready="true"]').waitFor()
    const load = await p.evaluate(() => {
      const navEntry = performance.getEntriesByType('navigation' as never)[0] as any
      const ready = performance.getEntriesByName('sigil:overview-ready')[0]!.startTime
      const scripts = (performance.getEntriesByType('resource' as never) as any[]).filter((r) =>
        /\/assets\/.*\.js$/.test(new URL(r.name).pathname),
      )
      return {
        overviewMs: ready,
        domContentLoadedMs: navEntry.domContentLoadedEventEnd,
        jsEncoded: scripts.reduce((n, r) => n + r.encodedBodySize, 0),
        jsDecoded: scripts.reduce((n, r) => n + r.decodedBodySize, 0),
        jsTransferred: scripts.reduce((n, r) => n + r.transferSize, 0),
        files: scripts.map((r) => new URL(r.name).pathname),
      }
    })
    t.comment(
      `first load: ${(load.jsEncoded / 1024).toFixed(1)} KB of compressed JavaScript (${(load.jsDecoded / 1024).toFixed(1)} KB uncompressed, ${(load.jsTransferred / 1024).toFixed(1)} KB on the wire with headers) in ${load.files.length} file(s)`,
    )
    t.comment(
      `overview shown ${load.overviewMs.toFixed(0)} ms after navigation start (DOMContentLoaded at ${load.domContentLoadedMs.toFixed(0)} ms)`,
    )
    t.ok(load.jsEncoded > 0, 'the scripts came compressed')
    t.ok(
      load.jsEncoded <= 300 * 1024,
      `first-load JavaScript within 300 KB compressed: ${load.jsEncoded} bytes`,
    )

    const clicked = await p.evaluate(() => performance.now())
    await p.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Network graph' }).click()
    const canvas = p.locator('canvas[data-rendered="true"]')
    await canvas.waitFor({ timeout: 30_000 })
    const rendered = await p.evaluate((from) => {
      const mark = performance.getEntriesByName('sigil:graph-rendered').at(-1)!.startTime
      const c = document.querySelector('canvas')!
      return {
        sinceClick: mark - from,
        firstDraw: Number(c.dataset.drawMs),
        nodes: Number(c.dataset.nodes),
        edges: Number(c.dataset.edges),
      }
    }, clicked)
    t.equal(rendered.edges, 5000)
    t.comment(
      `graph with ${rendered.nodes} nodes and ${rendered.edges} edges rendered ${rendered.sinceClick.toFixed(0)} ms after the click (chunk, 5,000 edges of JSON, first frame in ${rendered.firstDraw.toFixed(1)} ms)`,
    )
    await p.getByText('Layout settled.').waitFor({ timeout: 30_000 })
    const settled = await p.evaluate((from) => performance.now() - from, clicked)
    t.comment(
      `layout settled in the worker ${settled.toFixed(0)} ms after the click (the graph is usable meanwhile)`,
    )

    // Pan: drag across the canvas and measure the frames the browser produced meanwhile.
    const box = (await canvas.boundingBox())!
    // A string, not a function: tsx would name inner functions with a helper the page does not have.
    await p.evaluate(`(() => {
      window.frames_ = []
      window.draws_ = []
      window.stop_ = false
      const c = document.querySelector('canvas')
      new MutationObserver(() => window.draws_.push(Number(c.dataset.drawMs))).observe(c, { attributes: true, attributeFilter: ['data-draw-ms'] })
      const tick = (ts) => {
        window.frames_.push(ts)
        if (!window.stop_) requestAnimationFrame(tick)
      }
      requestAnimationFrame(tick)
    })()`)
    await p.mouse.move(box.x + box.width / 2, box.y + box.height / 2)
    await p.mouse.down()
    for (let i = 0; i < 60; i++)
      await p.mouse.move(box.x + box.width / 2 + i * 4, box.y + box.height / 2 + i * 2)
    await p.mouse.up()
    const pan = await p.evaluate(() => {
      const w = window as unknown as { frames_: number[]; draws_: number[]; stop_: boolean }
      w.stop_ = true
      const gaps = w.frames_.slice(1).map((f, i) => f - w.frames_[i]!)
      const sorted = [...gaps].sort((a, b) => a - b)
      const draws = [...w.draws_].sort((a, b) => a - b)
      return {
        frames: gaps.length,
        medianFrame: sorted[Math.floor(sorted.length / 2)] ?? 0,
        p95Frame: sorted[Math.floor(sorted.length * 0.95)] ?? 0,
        draws: draws.length,
        medianDraw: draws[Math.floor(draws.length / 2)] ?? 0,
        maxDraw: draws.at(-1) ?? 0,
      }
    })
    t.ok(pan.draws > 10, 'the drag redrew the graph')
    t.comment(
      `panning with the mouse (through the DevTools protocol): ${pan.draws} redraws, each ${pan.medianDraw.toFixed(1)} ms median / ${pan.maxDraw.toFixed(1)} ms max; frame interval ${pan.medianFrame.toFixed(1)} ms median, ${pan.p95Frame.toFixed(1)} ms p95 over ${pan.frames} frames`,
    )
    // The same in the page itself: one pointer move per animation frame for two seconds, so the frame
    // intervals measure the console, not the test's input pipe.
    const inPage = (await p.evaluate(`new Promise((resolve) => {
      const c = document.querySelector('canvas')
      const b = c.getBoundingClientRect()
      const at = (i) => ({ clientX: b.left + 100 + (i % 200) * 2, clientY: b.top + 100 + (i % 100), pointerId: 7, bubbles: true })
      c.dispatchEvent(new PointerEvent('pointerdown', at(0)))
      const frames = []
      let i = 0
      const step = (ts) => {
        frames.push(ts)
        c.dispatchEvent(new PointerEvent('pointermove', at(++i)))
        if (i < 120) requestAnimationFrame(step)
        else {
          c.dispatchEvent(new PointerEvent('pointerup', at(i)))
          const gaps = frames.slice(1).map((f, k) => f - frames[k]).sort((x, y) => x - y)
          resolve({ frames: gaps.length, median: gaps[Math.floor(gaps.length / 2)], p95: gaps[Math.floor(gaps.length * 0.95)], max: gaps[gaps.length - 1] })
        }
      }
      requestAnimationFrame(step)
    })`)) as { frames: number; median: number; p95: number; max: number }
    t.comment(
      `panning in the page: ${inPage.frames} frames, interval ${inPage.median.toFixed(1)} ms median, ${inPage.p95.toFixed(1)} ms p95, ${inPage.max.toFixed(1)} ms max (16.7 ms = 60 fps)`,
    )
    await p.getByRole('combobox', { name: 'Namespace' }).selectOption('ns-3')
    await p.getByText(/^\d+ of \d+ nodes, \d+ of 5000 edges/).waitFor()
    t.notMatch(
      await p.getByText(/ of 5000 edges/).textContent(),
      /^\d+ of \d+ nodes, 5000 of 5000/,
      'the namespace filter narrows the graph',
    )
    await shot(p, '17-graph-500-nodes')
    await ctx.close()
  })

  await t.test('a small mesh for the README', async (t) => {
    const shop = 'shop.example'
    await api.request('POST', '/v1/trust-domains', { name: shop })
    const reporter = await attestFlowReporter(t, server, api, shop, 'node-a')
    const id = (ns: string, sa: string) => `spiffe://${shop}/ns/${ns}/sa/${sa}`
    const mesh: Array<
      [
        string | { path: string },
        string | { fqdn: string },
        number,
        'allowed' | 'denied' | 'unidentified',
        string?,
      ]
    > = [
      [id('web', 'frontend'), id('shop', 'checkout'), 8443, 'allowed', 'frontend-to-checkout'],
      [id('web', 'frontend'), id('shop', 'catalog'), 8080, 'allowed', 'frontend-to-catalog'],
      [id('shop', 'checkout'), id('shop', 'payments'), 8443, 'allowed', 'checkout-to-payments'],
      [id('shop', 'checkout'), id('data', 'orders-db'), 5432, 'allowed', 'checkout-to-orders'],
      [id('shop', 'payments'), { fqdn: 'api.stripe.com' }, 443, 'allowed', 'payments-to-stripe'],
      [id('shop', 'payments'), id('data', 'orders-db'), 5432, 'allowed', 'payments-to-orders'],
      [id('shop', 'catalog'), id('data', 'catalog-db'), 5432, 'allowed', 'catalog-to-db'],
      [id('shop', 'catalog'), id('data', 'redis'), 6379, 'allowed', 'catalog-to-cache'],
      [id('shop', 'catalog'), { fqdn: 'images.cdn.example.net' }, 443, 'unidentified'],
      [{ path: '/usr/bin/curl' }, id('shop', 'checkout'), 8443, 'unidentified'],
      [id('tools', 'debug-shell'), id('data', 'orders-db'), 5432, 'denied', 'no-debug-shells'],
      [id('web', 'frontend'), { fqdn: 'telemetry.vendor.example' }, 443, 'denied', 'no-telemetry'],
    ]
    const records = mesh.flatMap(([from, to, port, verdict, rule]) =>
      Array.from({ length: 3 }, () =>
        flow({
          source:
            typeof from === 'string'
              ? {
                  spiffeId: from,
                  path: `/srv/${from.split('/').at(-1)}/bin/server`,
                  sha256: createHash('sha256').update(from).digest('hex'),
                }
              : { path: from.path, sha256: 'cd'.repeat(32) },
          destination: typeof to === 'string' ? { spiffeId: to, port } : { fqdn: to.fqdn, port },
          verdict,
          ...(rule ? { rule } : {}),
        }),
      ),
    )
    await reporter.report(records)
    await page.goto(`${server.url}/#/td/${shop}/graph`)
    await page.getByText('Layout settled.').waitFor()
    await page
      .getByRole('button', {
        name: `Show flows of ${id('tools', 'debug-shell')} → ${id('data', 'orders-db')}:5432`,
      })
      .click()
    await page
      .getByRole('complementary', { name: 'Flows of this edge' })
      .getByText('no-debug-shells')
      .first()
      .waitFor()
    const file = path.join(shots, '18-graph-readme.png')
    await page.evaluate(() => window.scrollTo(0, 0))
    await page.screenshot({ path: file })
    // The README's picture: written when missing, or on request, so a test run leaves the tree clean.
    const readme = path.join(root, 'docs/images/console-graph.png')
    if (!existsSync(readme) || process.env.SIGIL_UPDATE_SCREENSHOTS === '1') {
      mkdirSync(path.dirname(readme), { recursive: true })
      copyFileSync(file, readme)
      t.comment(`wrote ${path.relative(root, readme)}`)
    }
    t.pass(`the graph screenshot is ${path.relative(root, file)}`)
  })

  await t.test('sign-out ends the session', async (t) => {
    await page.goto(`${server.url}/#/td/${TD}/overview`)
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.getByRole('heading', { name: 'Sign in to Sigil' }).waitFor()
    const session = await page.evaluate(() => fetch('/v1/session').then((r) => r.json() as Promise<any>))
    t.equal(session.authenticated, false, 'the cookie is gone')
    t.ok(issuer.requests.includes('/logout'), "the provider's session ended too")
  })

  t.same(problems, [], 'no script ran that should not have, no CSP violation, no page error')
})
