import { readFileSync } from 'node:fs'
import t from 'tap'
import { dryRun, evaluate, type Flow, NO_RULE_BASELINE } from '../../services/policy/evaluate.ts'
import { parsePolicy } from '../../services/policy/parse.ts'
import { matchFqdn, matchSpiffeId } from '../../services/policy/patterns.ts'

const example = readFileSync(new URL('./fixtures/contract-example.yaml', import.meta.url), 'utf8')
const opts = { trustDomain: 'example.org' }
const id = (p: string) => `spiffe://example.org/${p}`
const DNA = 'a'.repeat(64)

function flow(
  src: string | undefined,
  dst: { spiffeId?: string; fqdn?: string; selectors?: string[] },
  port: number,
  srcSelectors: string[] = [],
): Flow {
  return {
    source: src ? { spiffeId: src, selectors: srcSelectors } : { selectors: srcSelectors },
    destination: dst,
    port,
  }
}

function policy(mode: string, rules: string, allowWithin = '[]') {
  return parsePolicy(`mode: ${mode}\nallowWithin: ${allowWithin}\nrules:\n${rules}`, opts)
}

t.test('SPIFFE ID globs', async (t) => {
  t.ok(matchSpiffeId(id('web'), id('web')))
  t.notOk(matchSpiffeId(id('web'), id('web2')))
  t.ok(matchSpiffeId(id('ns/prod/*'), id('ns/prod/api')))
  t.ok(matchSpiffeId(id('ns/prod/*'), id('ns/prod/sa/api')), 'trailing * spans the rest')
  t.notOk(matchSpiffeId(id('ns/prod/*'), id('ns/prod')), 'trailing * needs at least one segment')
  t.notOk(matchSpiffeId(id('ns/prod/*'), id('ns/production/api')))
  t.ok(matchSpiffeId(id('*/db'), id('a/db')))
  t.notOk(matchSpiffeId(id('*/db'), id('a/b/db')), 'inner * is exactly one segment')
  t.notOk(matchSpiffeId(id('*/db'), id('db')))
  t.notOk(matchSpiffeId(id('*'), 'spiffe://other.org/web'), 'trust domain is literal')
})

t.test('FQDN wildcards match exactly one label', async (t) => {
  t.ok(matchFqdn('*.s3.amazonaws.com', 'a.s3.amazonaws.com'))
  t.ok(matchFqdn('*.s3.amazonaws.com', 'A.S3.amazonaws.com.'), 'names are normalized')
  t.notOk(matchFqdn('*.s3.amazonaws.com', 's3.amazonaws.com'))
  t.notOk(matchFqdn('*.s3.amazonaws.com', 'x.a.s3.amazonaws.com'))
  t.notOk(matchFqdn('*.s3.amazonaws.com', 'evils3.amazonaws.com'))
  t.ok(matchFqdn('api.example.com', 'api.example.com'))
  t.notOk(matchFqdn('api.example.com', 'x.api.example.com'))
})

t.test('contract example: deny beats allow, fqdn, ports, baseline', async (t) => {
  const p = parsePolicy(example, opts)
  const webToDb = evaluate(p, flow(id('web'), { spiffeId: id('db') }, 5432))
  t.same(webToDb, { verdict: 'allowed', rule: 'web-to-db', reason: 'allow rule web-to-db' })
  const shell = evaluate(p, flow(id('web'), { spiffeId: id('db') }, 5432, ['unix:path:/bin/sh']))
  t.equal(shell.verdict, 'denied')
  t.equal(shell.rule, 'no-debug-shells')
  t.match(shell.reason, /deny rule no-debug-shells/)
  const unidentifiedShell = evaluate(p, flow(undefined, { spiffeId: id('db') }, 5432, ['unix:path:/bin/sh']))
  t.equal(unidentifiedShell.verdict, 'denied', 'deny rules apply to unidentified sources too')
  t.equal(evaluate(p, flow(id('web'), { fqdn: 'bucket.s3.amazonaws.com' }, 443)).rule, 'web-to-s3')
  const wrongPort = evaluate(p, flow(id('web'), { spiffeId: id('db') }, 5433))
  t.same(
    wrongPort,
    { verdict: 'allowed', reason: NO_RULE_BASELINE },
    'baseline lets unmatched identified traffic through',
  )
  const unidentified = evaluate(p, flow(undefined, { spiffeId: id('db') }, 5432))
  t.equal(unidentified.verdict, 'unidentified')
  t.equal(unidentified.rule, undefined)
})

t.test('deny wins regardless of rule order', async (t) => {
  const p = policy(
    'explicit',
    `  - name: allow-all
    from: { spiffeId: "${id('*')}" }
    to: { spiffeId: "${id('*')}" }
  - name: no-db
    action: deny
    from: { spiffeId: "${id('ns/dev/*')}" }
    to: { spiffeId: "${id('db')}", ports: ["5000-6000"] }
`,
  )
  t.equal(evaluate(p, flow(id('ns/dev/api'), { spiffeId: id('db') }, 5432)).rule, 'no-db')
  t.equal(
    evaluate(p, flow(id('ns/dev/api'), { spiffeId: id('db') }, 7000)).rule,
    'allow-all',
    'outside the deny port range',
  )
  t.equal(evaluate(p, flow(id('ns/prod/api'), { spiffeId: id('db') }, 5432)).rule, 'allow-all')
})

t.test('explicit mode', async (t) => {
  const p = policy(
    'explicit',
    `  - name: web-to-db
    from: { spiffeId: "${id('web')}" }
    to: { spiffeId: "${id('db')}", ports: [5432] }
  - name: by-selector
    from: { selector: "k8s:sa:batch" }
    to: { selector: "k8s:ns:data" }
`,
  )
  t.equal(evaluate(p, flow(id('web'), { spiffeId: id('db') }, 5432)).verdict, 'allowed')
  const other = evaluate(p, flow(id('api'), { spiffeId: id('db') }, 5432))
  t.equal(other.verdict, 'denied')
  t.match(other.reason, /no rule allows spiffe:\/\/example.org\/api to spiffe:\/\/example.org\/db port 5432/)
  const anon = evaluate(p, flow(undefined, { spiffeId: id('db') }, 5432, ['k8s:sa:batch']))
  t.equal(anon.verdict, 'denied', 'allow rules never admit an unidentified source')
  t.match(anon.reason, /no SPIFFE ID/)
  const sel = evaluate(
    p,
    flow(id('job'), { spiffeId: id('store'), selectors: ['k8s:ns:data'] }, 9000, ['k8s:sa:batch']),
  )
  t.equal(sel.rule, 'by-selector')
  t.equal(
    evaluate(p, flow(id('job'), { spiffeId: id('store') }, 9000, ['k8s:sa:batch'])).verdict,
    'denied',
    'destination lacks the selector',
  )
})

t.test('code-DNA selector rules', async (t) => {
  const p = policy(
    'explicit',
    `  - name: only-the-real-binary
    from: { spiffeId: "${id('web')}", selector: "unix:sha256:${DNA}" }
    to: { spiffeId: "${id('db')}" }
`,
  )
  t.equal(
    evaluate(p, flow(id('web'), { spiffeId: id('db') }, 1, [`unix:sha256:${DNA}`, 'unix:uid:1000'])).verdict,
    'allowed',
  )
  t.equal(
    evaluate(p, flow(id('web'), { spiffeId: id('db') }, 1, [`unix:sha256:${'b'.repeat(64)}`])).verdict,
    'denied',
    'a swapped binary is refused',
  )
  t.equal(
    evaluate(p, flow(id('api'), { spiffeId: id('db') }, 1, [`unix:sha256:${DNA}`])).verdict,
    'denied',
    'both criteria must hold',
  )
})

t.test('allowWithin', async (t) => {
  const p = policy('explicit', '  []\n', '["k8s:ns", "k8s:pod-label:app.kubernetes.io/part-of"]')
  const same = evaluate(
    p,
    flow(id('a'), { spiffeId: id('b'), selectors: ['k8s:ns:prod'] }, 80, ['k8s:ns:prod']),
  )
  t.same(same, { verdict: 'allowed', reason: 'allowWithin: both ends have k8s:ns:prod' })
  t.equal(
    evaluate(p, flow(id('a'), { spiffeId: id('b'), selectors: ['k8s:ns:dev'] }, 80, ['k8s:ns:prod'])).verdict,
    'denied',
  )
  const label = 'k8s:pod-label:app.kubernetes.io/part-of:shop'
  t.equal(
    evaluate(p, flow(id('a'), { spiffeId: id('b'), selectors: [label] }, 80, [label, 'k8s:ns:x'])).verdict,
    'allowed',
  )
  t.equal(
    evaluate(
      p,
      flow(id('a'), { spiffeId: id('b'), selectors: ['k8s:pod-label:app:shop'] }, 80, [
        'k8s:pod-label:app:shop',
      ]),
    ).verdict,
    'denied',
    'only the listed label key counts',
  )
  t.equal(
    evaluate(p, flow(undefined, { spiffeId: id('b'), selectors: ['k8s:ns:prod'] }, 80, ['k8s:ns:prod']))
      .verdict,
    'denied',
    'needs an identified source',
  )
  t.equal(
    evaluate(p, flow(id('a'), { fqdn: 'x.example.com', selectors: ['k8s:ns:prod'] }, 80, ['k8s:ns:prod']))
      .verdict,
    'denied',
    'needs an identified destination',
  )
  const deny = policy(
    'baseline',
    `  - name: no
    action: deny
    from: { spiffeId: "${id('a')}" }
    to: { spiffeId: "${id('b')}" }
`,
    '["k8s:ns"]',
  )
  t.equal(
    evaluate(deny, flow(id('a'), { spiffeId: id('b'), selectors: ['k8s:ns:p'] }, 80, ['k8s:ns:p'])).verdict,
    'denied',
    'deny beats allowWithin',
  )
})

t.test('dry run tells what explicit mode would break', async (t) => {
  const p = parsePolicy(example, opts)
  const flows = [
    flow(id('web'), { spiffeId: id('db') }, 5432),
    flow(id('web'), { fqdn: 'b.s3.amazonaws.com' }, 443),
    flow(id('a'), { spiffeId: id('b'), selectors: ['k8s:ns:prod'] }, 80, ['k8s:ns:prod']),
    flow(id('web'), { spiffeId: id('cache') }, 6379),
    flow(undefined, { spiffeId: id('db') }, 5432),
    flow(id('web'), { fqdn: 's3.amazonaws.com' }, 443),
  ]
  const r = dryRun(p, flows)
  t.equal(r.wouldAllow, 3)
  t.same(
    r.wouldDeny.map((d) => d.flow),
    [flows[3], flows[4], flows[5]],
  )
  t.match(r.wouldDeny[0]?.reason, /no rule allows/)
  t.match(r.wouldDeny[1]?.reason, /no SPIFFE ID/)
  t.equal(p.mode, 'baseline', 'the policy itself is untouched')
})
