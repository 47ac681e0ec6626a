// The network policy API: set and read (policy file and JSON form), versions and compare-and-set, mode
// switches that keep comments, refusals that name the line and field and leave the running policy
// alone, tenancy and roles, the audit trail, dry runs and recommendations over stored flows, and the
// policy in the agents' sync stream.

import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { parse, parseAllDocuments } from 'yaml'
import type { FlowRecord } from '../../services/flows/flow.ts'
import { evaluate } from '../../services/policy/evaluate.ts'
import { parsePolicy } from '../../services/policy/parse.ts'
import { policyFromView } from '../../services/policy/view.ts'
import { buildTestApp, type TestApp } from '../helpers/app.ts'
import { attestTestAgent } from '../helpers/test-agent.ts'
import { until } from '../store/conformance-watch.ts'

const example = readFileSync(
  new URL('../policy/fixtures/contract-example.yaml', import.meta.url),
  'utf8',
).replaceAll('example.org', 'a.org')
const base = '/v1/trust-domains/a.org/policy'

async function setup(t: Test, opts: Parameters<typeof buildTestApp>[1] = {}) {
  const h = await buildTestApp(t, opts)
  for (const name of ['a.org', 'b.org']) {
    const res = await h.call('POST', '/v1/trust-domains', { name })
    if (res.statusCode !== 201) throw new Error(res.body)
  }
  const token = async (name: string, trustDomain: string, role: 'admin' | 'viewer') =>
    (await h.services.apiTokens.create(undefined, { name, grants: [{ trustDomain, role }] })).token
  return {
    h,
    viewer: await token('viewer-a', 'a.org', 'viewer'),
    adminA: await token('admin-a', 'a.org', 'admin'),
    adminB: await token('admin-b', 'b.org', 'admin'),
  }
}

const put = (h: TestApp, body: unknown, token?: string) => h.call('PUT', base, body, token)

t.test('a trust domain without a policy has version 0: baseline, no rules', async (t) => {
  const { h } = await setup(t)
  const res = await h.call('GET', base)
  t.equal(res.statusCode, 200, res.body)
  t.strictSame(res.json, {
    trustDomain: 'a.org',
    version: 0,
    mode: 'baseline',
    allowWithin: [],
    rules: [],
    text: '',
    updatedAt: null,
    updatedBy: null,
  })
  await h.call('POST', '/v1/trust-domains', { name: 'x.org', settings: { policyMode: 'explicit' } })
  t.equal(
    (await h.call('GET', '/v1/trust-domains/x.org/policy')).json.mode,
    'explicit',
    "version 0 takes the trust domain's mode",
  )
  t.equal(
    (await h.call('GET', '/v1/trust-domains/nope.org/policy')).json.error.code,
    'TRUST_DOMAIN_NOT_FOUND',
  )
})

t.test('set from a policy file: stored as given, shown normalized', async (t) => {
  const { h } = await setup(t)
  const res = await put(h, { text: example })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.json.version, 1)
  t.equal(res.json.text, example, 'the text is kept as given, comments and all')
  t.equal(res.json.mode, 'baseline')
  t.strictSame(res.json.allowWithin, ['k8s:ns', 'k8s:pod-label:app.kubernetes.io/part-of'])
  t.strictSame(res.json.rules, [
    {
      name: 'web-to-db',
      action: 'allow',
      from: { spiffeId: 'spiffe://a.org/web' },
      to: { spiffeId: 'spiffe://a.org/db', ports: [5432] },
    },
    {
      name: 'web-to-s3',
      action: 'allow',
      from: { spiffeId: 'spiffe://a.org/web' },
      to: { fqdn: '*.s3.amazonaws.com', ports: [443] },
    },
    {
      name: 'no-debug-shells',
      action: 'deny',
      from: { selector: 'unix:path:/bin/sh' },
      to: { spiffeId: 'spiffe://a.org/db' },
    },
  ])
  t.match(res.json.updatedBy, /^token:.* \(test-admin\)$/)
  t.ok(Date.parse(res.json.updatedAt) > 0)
  t.strictSame((await h.call('GET', base)).json, res.json, 'GET shows what PUT returned')
  t.same(
    policyFromView(res.json),
    parsePolicy(example, { trustDomain: 'a.org' }),
    'policyFromView rebuilds the parsed policy from the view',
  )
  const ranges = await put(h, {
    text: 'mode: explicit\nrules:\n  - name: r\n    from: { selector: "k8s:ns:a" }\n    to: { selector: "k8s:ns:b", ports: [8001, "8002-8010", 22, 8000] }\n',
  })
  t.strictSame(ranges.json.rules[0].to.ports, [22, '8000-8010'], 'ports merged: integers or "LOW-HIGH"')
  t.equal(ranges.json.version, 2)
})

t.test('set from the JSON form (what Terraform sends)', async (t) => {
  const { h } = await setup(t)
  const body = {
    policy: {
      mode: 'explicit',
      allowWithin: ['k8s:ns'],
      rules: [
        {
          name: 'web-to-db',
          from: { spiffeId: 'spiffe://a.org/web' },
          to: { spiffeId: 'spiffe://a.org/db', ports: ['5432', 8080, '9000-9001'] },
        },
        {
          name: 'no-shells',
          action: 'deny',
          from: { selector: 'unix:path:/bin/sh' },
          to: { fqdn: 'x.example.com' },
        },
      ],
    },
  }
  const res = await put(h, body)
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.json.mode, 'explicit')
  t.strictSame(res.json.rules, [
    {
      name: 'web-to-db',
      action: 'allow',
      from: { spiffeId: 'spiffe://a.org/web' },
      to: { spiffeId: 'spiffe://a.org/db', ports: [5432, 8080, '9000-9001'] },
    },
    {
      name: 'no-shells',
      action: 'deny',
      from: { selector: 'unix:path:/bin/sh' },
      to: { fqdn: 'x.example.com' },
    },
  ])
  t.same(
    parsePolicy(res.json.text, { trustDomain: 'a.org' }),
    policyFromView(res.json),
    'the generated text is a policy file saying the same',
  )
  // The view is itself a valid JSON form: reading it back and sending it again changes nothing.
  const { mode, allowWithin, rules } = res.json
  const again = await put(h, { policy: { mode, allowWithin, rules }, expectedVersion: 1 })
  t.equal(again.statusCode, 200, again.body)
  t.strictSame(again.json.rules, res.json.rules)

  const noMode = await put(h, { policy: { rules: [] } })
  t.equal(noMode.json.mode, 'explicit', 'a JSON policy without mode keeps the running mode')
  t.strictSame(noMode.json.allowWithin, [])
  const file = await put(h, { text: 'rules: []\n' })
  t.equal(file.json.mode, 'baseline', 'a policy file says what runs: no mode line is baseline')

  const bad = await put(h, {
    policy: {
      rules: [{ name: 'r', from: { spiffeId: 'spiffe://a.org/web' }, to: { fqdn: 'a.b.c', ports: [70000] } }],
    },
  })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json.error.code, 'VALIDATION_FAILED', 'the schema refuses an out-of-range integer port')
  const badRange = await put(h, {
    policy: {
      rules: [
        { name: 'r', from: { spiffeId: 'spiffe://a.org/web' }, to: { fqdn: 'a.b.c', ports: ['90-80'] } },
      ],
    },
  })
  t.equal(badRange.json.error.code, 'POLICY_INVALID')
  t.equal(
    badRange.json.error.message,
    'policy.rules[0].to.ports[0]: port range "90-80" is reversed; write "80-90"',
  )
  t.strictSame(badRange.json.error.details, { path: 'rules[0].to.ports[0]' }, 'JSON: the path, no line')
  const unknown = await put(h, {
    policy: {
      rules: [{ name: 'r', from: { spiffeId: 'spiffe://a.org/web', port: 1 }, to: { fqdn: 'a.b.c' } }],
    },
  })
  t.equal(unknown.json.error.code, 'UNKNOWN_FIELD')
  t.match(unknown.json.error.message, /"port".*\/policy\/rules\/0\/from/)
  t.equal((await put(h, { text: 'rules: []\n', policy: {} })).json.error.code, 'VALIDATION_FAILED')
  t.equal((await put(h, {})).json.error.code, 'VALIDATION_FAILED')
  t.equal((await put(h, { text: 'x', extra: 1 })).json.error.code, 'UNKNOWN_FIELD')
  t.equal((await h.call('GET', base)).json.version, 4, 'none of the refusals wrote a version')
})

t.test('versions, compare-and-set, reset', async (t) => {
  const { h } = await setup(t)
  t.equal((await put(h, { text: 'mode: baseline\n', expectedVersion: 0 })).json.version, 1)
  const stale = await put(h, { text: 'mode: explicit\n', expectedVersion: 0 })
  t.equal(stale.statusCode, 409)
  t.equal(stale.json.error.code, 'POLICY_VERSION_CONFLICT')
  t.match(stale.json.error.message, /version 1, not 0/)
  t.equal((await put(h, { text: 'mode: explicit\n', expectedVersion: 1 })).json.version, 2)

  const racers = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      put(h, { text: `# racer ${i}\nmode: baseline\n`, expectedVersion: 2 }),
    ),
  )
  t.equal(racers.filter((r) => r.statusCode === 200).length, 1, 'of 10 racing writers exactly one wins')
  t.ok(
    racers.filter((r) => r.statusCode !== 200).every((r) => r.json.error.code === 'POLICY_VERSION_CONFLICT'),
    'the others get 409',
  )
  const winner = racers.find((r) => r.statusCode === 200)!.json
  t.strictSame((await h.call('GET', base)).json, winner)

  const reset = await h.call('DELETE', base)
  t.equal(reset.statusCode, 200, reset.body)
  t.equal(reset.json.version, 4, 'a reset is a new version')
  t.equal(reset.json.mode, 'baseline')
  t.strictSame(reset.json.rules, [])
  t.strictSame(reset.json.allowWithin, [])

  const versions = await h.call('GET', `${base}/versions`)
  t.strictSame(
    versions.json.versions.map((v: { version: number }) => v.version),
    [4, 3, 2, 1],
    'history, newest first, kept through the reset',
  )
  t.equal(versions.json.versions[3].text, 'mode: baseline\n')
  t.equal((await h.call('GET', `${base}/versions?limit=2`)).json.versions.length, 2)
  t.equal((await h.call('GET', `${base}/versions?limit=x`)).json.error.code, 'VALIDATION_FAILED')
})

t.test('a mode switch is a new version that keeps the file and its comments', async (t) => {
  const { h } = await setup(t)
  await put(h, { text: example })
  const res = await h.call('PUT', `${base}/mode`, { mode: 'explicit' })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.json.version, 2)
  t.equal(res.json.mode, 'explicit')
  t.match(res.json.text, /^mode: explicit # baseline: observe, let unidentified traffic through/)
  for (const comment of ['# exact or glob: spiffe://a.org/ns/prod/*', '# deny always wins over allow']) {
    t.ok(res.json.text.includes(comment), `keeps ${comment}`)
  }
  const before = parsePolicy(example, { trustDomain: 'a.org' })
  t.same(
    parsePolicy(res.json.text, { trustDomain: 'a.org' }),
    { ...before, mode: 'explicit' },
    'only the mode changed',
  )
  const same = await h.call('PUT', `${base}/mode`, { mode: 'explicit' })
  t.equal(same.json.version, 2, 'switching to the running mode writes nothing')
  t.equal((await h.call('PUT', `${base}/mode`, { mode: 'strict' })).json.error.code, 'VALIDATION_FAILED')
  t.equal((await h.call('GET', '/v1/trust-domains/a.org')).json.settings.policyMode, 'explicit')

  const fresh = await h.call('PUT', '/v1/trust-domains/b.org/policy/mode', { mode: 'explicit' })
  t.equal(fresh.json.version, 1, 'on version 0 it writes the first version')
  t.equal(fresh.json.text, 'mode: explicit\n')
})

t.test("the trust domain's policyMode setting is the policy's mode", async (t) => {
  const { h } = await setup(t)
  await put(h, { text: '# keep me\nmode: baseline\nrules: []\n' })
  const patched = await h.call('PATCH', '/v1/trust-domains/a.org', { settings: { policyMode: 'explicit' } })
  t.equal(patched.statusCode, 200, patched.body)
  t.equal(patched.json.settings.policyMode, 'explicit')
  const current = (await h.call('GET', base)).json
  t.equal(current.version, 2, 'the PATCH wrote a policy version')
  t.equal(current.mode, 'explicit')
  t.match(current.text, /# keep me/)
  await h.call('PATCH', '/v1/trust-domains/a.org', { settings: { policyMode: 'explicit', x509MaxTtl: 7200 } })
  t.equal((await h.call('GET', base)).json.version, 2, 'the same mode again writes nothing')

  await put(h, { text: 'mode: baseline\n' })
  t.equal(
    (await h.call('GET', '/v1/trust-domains/a.org')).json.settings.policyMode,
    'baseline',
    'the trust domain shows the running policy mode',
  )
  const listed = (await h.call('GET', '/v1/trust-domains')).json.trustDomains
  t.equal(listed.find((d: { name: string }) => d.name === 'a.org').settings.policyMode, 'baseline')
  const events = (await h.call('GET', '/v1/trust-domains/a.org/audit')).json.events
  t.ok(
    events.some((e: { action: string }) => e.action === 'trust-domain.update'),
    'the mode change is audited as the PATCH',
  )
  t.notOk(events.some((e: { action: string }) => e.action === 'policy.mode'))
})

t.test('a refused policy names the line and field, and the running one stays', async (t) => {
  const { h } = await setup(t)
  await put(h, { text: example })
  const cases: Array<[string, string, number, string, RegExp]> = [
    [
      'unknown key',
      'mode: baseline\nrules:\n  - name: a\n    form: { spiffeId: "spiffe://a.org/web" }\n    to: { spiffeId: "spiffe://a.org/db" }\n',
      4,
      'rules[0].form',
      /unknown key "form"/,
    ],
    [
      'bad glob',
      'rules:\n  - name: a\n    from: { spiffeId: "spiffe://a.org/web-*" }\n    to: { spiffeId: "spiffe://a.org/db" }\n',
      3,
      'rules[0].from.spiffeId',
      /whole path segment/,
    ],
    [
      'bad port',
      'rules:\n  - name: a\n    from: { spiffeId: "spiffe://a.org/web" }\n    to:\n      spiffeId: "spiffe://a.org/db"\n      ports: [5432, 99999]\n',
      6,
      'rules[0].to.ports[1]',
      /port 99999 is out of range/,
    ],
    [
      'rule naming nothing',
      'rules:\n  - name: a\n    from: {}\n    to: { fqdn: "a.b.c" }\n',
      3,
      'rules[0].from',
      /names nothing/,
    ],
    [
      "another tenant's SPIFFE ID",
      'rules:\n  - name: a\n    from: { spiffeId: "spiffe://a.org/web" }\n    to: { spiffeId: "spiffe://b.org/db" }\n',
      4,
      'rules[0].to.spiffeId',
      /trust domain "b.org", not "a.org"/,
    ],
    ['not YAML', 'rules: [\n', 2, '', /YAML/],
  ]
  for (const [what, text, line, path, message] of cases) {
    const res = await put(h, { text })
    t.equal(res.statusCode, 400, what)
    t.equal(res.json.error.code, 'POLICY_INVALID', what)
    t.match(res.json.error.message, new RegExp(`^line ${line}, `), `${what}: the message names the line`)
    t.ok(res.json.error.message.includes(path || '(document)'), `${what}: and the field`)
    t.match(res.json.error.message, message, what)
    t.match(res.json.error.details, { line, path }, `${what}: details`)
    t.type(res.json.error.details.column, 'number')
  }
  const current = (await h.call('GET', base)).json
  t.equal(current.version, 1, 'no refused policy became a version')
  t.equal(current.text, example, 'the old policy keeps running')
  const dry = await h.call('POST', `${base}/dry-run`, { text: cases[0]![1] })
  t.equal(dry.json.error.code, 'POLICY_INVALID', 'a dry run refuses the same way')
})

t.test('roles and tenancy', async (t) => {
  const { h, viewer, adminA, adminB } = await setup(t)
  await put(h, { text: example })
  t.equal((await h.call('GET', base, undefined, viewer)).statusCode, 200, 'a viewer reads')
  t.equal((await h.call('GET', `${base}/versions`, undefined, viewer)).statusCode, 200)
  t.equal((await h.call('POST', `${base}/dry-run`, {}, viewer)).statusCode, 200, 'and may ask for a dry run')
  t.equal((await h.call('GET', `${base}/recommendation`, undefined, viewer)).statusCode, 200)
  for (const [method, url, body] of [
    ['PUT', base, { text: 'mode: explicit\n' }],
    ['PUT', `${base}/mode`, { mode: 'explicit' }],
    ['DELETE', base, undefined],
  ] as const) {
    const res = await h.call(method, url, body, viewer)
    t.equal(res.statusCode, 403, `a viewer cannot ${method} ${url}`)
    t.equal(res.json.error.code, 'FORBIDDEN')
  }
  for (const url of [base, `${base}/versions`, `${base}/recommendation`, '/v1/trust-domains/a.org/flows']) {
    t.equal(
      (await h.call('GET', url, undefined, adminB)).json.error.code,
      'FORBIDDEN',
      `b.org cannot read ${url}`,
    )
  }
  t.equal((await h.call('POST', `${base}/dry-run`, {}, adminB)).json.error.code, 'FORBIDDEN')
  t.equal((await put(h, { text: 'mode: explicit\n' }, adminB)).json.error.code, 'FORBIDDEN')
  t.equal((await put(h, { text: 'mode: explicit\n' }, adminA)).statusCode, 200, "a.org's admin may")
  t.equal((await h.call('GET', base)).json.version, 2)
})

t.test('every policy change is audited, refusals included; reads and dry runs are not', async (t) => {
  const { h, viewer } = await setup(t)
  await put(h, { text: example })
  await put(h, { text: 'rules: [' })
  await h.call('PUT', `${base}/mode`, { mode: 'explicit' })
  await h.call('DELETE', base)
  await put(h, { text: 'mode: explicit\n' }, viewer)
  await h.call('GET', base)
  await h.call('POST', `${base}/dry-run`, {})
  const events = (await h.call('GET', '/v1/trust-domains/a.org/audit')).json.events
  t.strictSame(
    events
      .filter((e: { action: string }) => e.action.startsWith('policy.'))
      .map((e: { action: string; result: string; status: number; code: string | null }) => [
        e.action,
        e.result,
        e.status,
        e.code,
      ]),
    [
      ['policy.set', 'error', 403, 'FORBIDDEN'],
      ['policy.reset', 'ok', 200, null],
      ['policy.mode', 'ok', 200, null],
      ['policy.set', 'error', 400, 'POLICY_INVALID'],
      ['policy.set', 'ok', 200, null],
    ],
  )
  t.ok(
    events.every((e: { target: string }) => !e.target.includes('dry-run')),
    'dry runs are not audited',
  )
})

const now = Date.now()
const TD = 'a.org'
function flow(id: string, overrides: Partial<FlowRecord> = {}): FlowRecord {
  return {
    id,
    side: 'egress',
    start: now - 60_000,
    durationMs: 5,
    source: {
      spiffeId: `spiffe://${TD}/web`,
      selectors: ['k8s:ns:shop', 'k8s:pod-label:app:web'],
      agent: `spiffe://${TD}/sigil/agent/n1`,
    },
    destination: {
      spiffeId: `spiffe://${TD}/db`,
      port: 5432,
      selectors: ['k8s:ns:data', 'k8s:pod-label:app:db'],
    },
    bytesOut: 10,
    bytesIn: 20,
    verdict: 'allowed',
    reason: 'no rule (baseline)',
    mode: 'baseline',
    policyVersion: 0,
    ...overrides,
  }
}

async function seedFlows(h: TestApp) {
  const records = [
    flow('f1'),
    flow('f1', { side: 'ingress' }),
    flow('f2'),
    flow('f3', { destination: { fqdn: 'bucket.s3.amazonaws.com', port: 443 } }),
    flow('f4', {
      source: { path: '/usr/bin/curl', agent: `spiffe://${TD}/sigil/agent/n1` },
      destination: { fqdn: 'evil.example.com', port: 443 },
      verdict: 'unidentified',
    }),
    flow('f5', {
      source: { spiffeId: `spiffe://${TD}/batch`, selectors: ['k8s:ns:data'] },
      destination: { spiffeId: `spiffe://${TD}/db`, port: 5432, selectors: ['k8s:ns:data'] },
    }),
    flow('f6', {
      verdict: 'denied',
      rule: 'no-debug-shells',
      destination: { spiffeId: `spiffe://${TD}/db`, port: 22 },
    }),
    flow('old', { start: now - 5 * 3600_000 }),
  ]
  await h.store.appendFlows(TD, records, { maxAgeMs: 86_400_000, maxCount: 1000 }, now)
}

t.test('dry run: what explicit mode would refuse, grouped', async (t) => {
  const { h } = await setup(t)
  await seedFlows(h)
  const current = await h.call('POST', `${base}/dry-run`, {})
  t.equal(current.statusCode, 200, current.body)
  t.equal(current.json.flowsExamined, 6, 'the last hour, the two sides of f1 counted once')
  t.equal(current.json.wouldAllow, 0, 'no rule: nothing would be allowed')
  const groups = current.json.wouldDeny.map((g: any) => [
    g.source.spiffeId ?? `${g.source.path} on ${g.source.agent}`,
    g.destination.spiffeId ?? g.destination.fqdn,
    g.port,
    g.count,
  ])
  t.same(
    groups.sort(),
    [
      ['/usr/bin/curl on spiffe://a.org/sigil/agent/n1', 'evil.example.com', 443, 1],
      ['spiffe://a.org/batch', 'spiffe://a.org/db', 5432, 1],
      ['spiffe://a.org/web', 'bucket.s3.amazonaws.com', 443, 1],
      ['spiffe://a.org/web', 'spiffe://a.org/db', 22, 1],
      ['spiffe://a.org/web', 'spiffe://a.org/db', 5432, 2],
    ],
    'grouped by source, destination and port',
  )
  t.match(
    current.json.wouldDeny[0],
    { count: 2, reason: /no rule allows/, lastSeen: /Z$/ },
    'biggest group first',
  )

  const proposed = await h.call('POST', `${base}/dry-run`, { text: example, since: 3600 })
  t.equal(proposed.json.flowsExamined, 6)
  t.equal(proposed.json.wouldAllow, 4, 'web-to-db (2), web-to-s3, and batch to db by allowWithin k8s:ns')
  const denied = proposed.json.wouldDeny.map((g: any) => g.destination.spiffeId ?? g.destination.fqdn)
  t.same(denied.sort(), ['evil.example.com', 'spiffe://a.org/db'], 'the unidentified caller and port 22')
  const wide = await h.call('POST', `${base}/dry-run`, { since: 6 * 3600 })
  t.equal(wide.json.flowsExamined, 7, 'since widens the window')
  t.equal(
    (await h.call('POST', `${base}/dry-run`, { since: 31 * 86400 })).json.error.code,
    'VALIDATION_FAILED',
  )
  const json = await h.call('POST', `${base}/dry-run`, {
    policy: {
      rules: [
        { name: 'web', from: { spiffeId: 'spiffe://a.org/web' }, to: { spiffeId: 'spiffe://a.org/db' } },
      ],
    },
  })
  t.equal(json.json.wouldAllow, 3, 'the JSON form too')
})

t.test('recommendation in four formats', async (t) => {
  const { h } = await setup(t)
  await seedFlows(h)
  const yaml = await h.call('GET', `${base}/recommendation`)
  t.equal(yaml.statusCode, 200, yaml.body)
  t.equal(yaml.json.format, 'yaml')
  const recommended = parsePolicy(yaml.json.text, { trustDomain: 'a.org' })
  t.equal(recommended.mode, 'explicit')
  t.same(recommended, policyFromView(yaml.json.policy), 'text and policy agree')
  const flows = [
    {
      source: { spiffeId: 'spiffe://a.org/web', selectors: [] },
      destination: { spiffeId: 'spiffe://a.org/db' },
      port: 5432,
    },
    {
      source: { spiffeId: 'spiffe://a.org/web', selectors: [] },
      destination: { fqdn: 'bucket.s3.amazonaws.com' },
      port: 443,
    },
    {
      source: { spiffeId: 'spiffe://a.org/batch', selectors: [] },
      destination: { spiffeId: 'spiffe://a.org/db' },
      port: 5432,
    },
  ]
  for (const f of flows)
    t.equal(evaluate(recommended, f).verdict, 'allowed', `admits ${f.source.spiffeId} -> ${f.port}`)
  t.equal(
    evaluate(recommended, { ...flows[0]!, port: 22 }).verdict,
    'denied',
    'a flow a deny rule decided is not recommended',
  )
  t.notOk(yaml.json.text.includes('evil.example.com'), 'unidentified sources are left out')

  const json = await h.call('GET', `${base}/recommendation?format=json&since=3600`)
  t.equal(json.json.format, 'json')
  t.same(JSON.parse(json.json.text), json.json.policy)
  const applied = await put(h, { policy: json.json.policy })
  t.equal(applied.statusCode, 200, 'the JSON recommendation can be PUT as it is')

  const k8s = await h.call('GET', `${base}/recommendation?format=k8s`)
  const docs = parseAllDocuments(k8s.json.text).map((d) => d.toJS())
  const np = docs.find((d) => d?.kind === 'NetworkPolicy')
  t.ok(np, 'a NetworkPolicy')
  t.equal(np.metadata.namespace, 'data', 'namespace from the observed k8s:ns selector')
  t.same(np.spec.podSelector, { matchLabels: { app: 'db' } }, 'labels from k8s:pod-label selectors')
  t.match(k8s.json.text, /# not exported: rule .*NetworkPolicy cannot name an FQDN/)

  const cilium = await h.call('GET', `${base}/recommendation?format=cilium`)
  const cdocs = parseAllDocuments(cilium.json.text).map((d) => d.toJS())
  t.ok(
    cdocs.some((d) => d?.kind === 'CiliumNetworkPolicy' && d.spec.egress?.[0]?.toFQDNs),
    'FQDN egress',
  )
  t.equal((await h.call('GET', `${base}/recommendation?format=xml`)).json.error.code, 'VALIDATION_FAILED')
  void parse
})

t.test('the OpenAPI document describes the policy and flow routes', async (t) => {
  const { h } = await setup(t)
  const doc = (await h.call('GET', '/v1/openapi.json', undefined, null)).json
  for (const p of [
    '/v1/trust-domains/{trustDomain}/policy',
    '/v1/trust-domains/{trustDomain}/policy/mode',
    '/v1/trust-domains/{trustDomain}/policy/versions',
    '/v1/trust-domains/{trustDomain}/policy/dry-run',
    '/v1/trust-domains/{trustDomain}/policy/recommendation',
    '/v1/trust-domains/{trustDomain}/flows',
    '/v1/trust-domains/{trustDomain}/flows/graph',
    '/v1/agent/flows',
  ]) {
    t.ok(doc.paths[p], `${p} is documented`)
  }
  const body =
    doc.paths['/v1/trust-domains/{trustDomain}/policy'].put.requestBody.content['application/json'].schema
  t.equal(body.additionalProperties, false)
  t.equal(body.properties.policy.properties.rules.items.additionalProperties, false)
})

t.test("the agents' sync stream carries the policy, and a new one at once after PUT", async (t) => {
  const h = await buildTestApp(t, { https: true })
  await h.call('POST', '/v1/trust-domains', { name: 'a.org' })
  const agent = await attestTestAgent(t, h, 'a.org', 'node1')
  const states: any[] = []
  const abort = new AbortController()
  const stream = agent.client
    .stream(
      '/v1/agent/sync',
      (event, data) => event === 'state' && states.push(JSON.parse(data)),
      abort.signal,
    )
    .catch(() => {})
  t.teardown(async () => {
    abort.abort()
    await stream
  })
  t.ok(await until(() => states.length === 1), 'the first state arrives')
  t.strictSame(states[0].policy, { version: 0, mode: 'baseline', allowWithin: [], rules: [] })
  const res = await put(h, { text: example })
  t.equal(res.statusCode, 200)
  t.ok(await until(() => states.length === 2), 'a new state follows the PUT')
  const { version, mode, allowWithin, rules } = res.json
  t.strictSame(states[1].policy, { version, mode, allowWithin, rules }, 'the policy as GET shows it')
  t.same(
    policyFromView(states[1].policy),
    parsePolicy(example, { trustDomain: 'a.org' }),
    'rebuilt by the agent',
  )
  await h.call('PUT', `${base}/mode`, { mode: 'explicit' })
  t.ok(
    await until(() => states.length === 3 && states[2].policy.mode === 'explicit'),
    'and after a mode switch',
  )
  abort.abort()
  await stream
})
