import { readFileSync } from 'node:fs'
import t from 'tap'
import { parsePolicy } from '../../services/policy/parse.ts'
import { PolicyError } from '../../services/policy/policy.ts'

const example = readFileSync(new URL('./fixtures/contract-example.yaml', import.meta.url), 'utf8')
const opts = { trustDomain: 'example.org' }

function refused(text: string, o: Parameters<typeof parsePolicy>[1] = opts): PolicyError {
  try {
    parsePolicy(text, o)
  } catch (err) {
    if (err instanceof PolicyError) return err
    throw err
  }
  throw new Error(`policy was accepted:\n${text}`)
}

// A well-formed rule to splice malformed parts into; `to` is on line 4 when rules start on line 1.
function rule(
  to = '{ spiffeId: "spiffe://example.org/db", ports: [5432] }',
  from = '{ spiffeId: "spiffe://example.org/web" }',
) {
  return `rules:\n  - name: r\n    from: ${from}\n    to: ${to}\n`
}

t.test('the contract example parses', async (t) => {
  const p = parsePolicy(example, opts)
  t.equal(p.mode, 'baseline')
  t.same(p.allowWithin, ['k8s:ns', 'k8s:pod-label:app.kubernetes.io/part-of'])
  t.same(p.rules, [
    {
      name: 'web-to-db',
      action: 'allow',
      from: { spiffeId: 'spiffe://example.org/web' },
      to: { spiffeId: 'spiffe://example.org/db', ports: [{ from: 5432, to: 5432 }] },
    },
    {
      name: 'web-to-s3',
      action: 'allow',
      from: { spiffeId: 'spiffe://example.org/web' },
      to: { fqdn: '*.s3.amazonaws.com', ports: [{ from: 443, to: 443 }] },
    },
    {
      name: 'no-debug-shells',
      action: 'deny',
      from: { selector: 'unix:path:/bin/sh' },
      to: { spiffeId: 'spiffe://example.org/db' },
    },
  ])
})

t.test('defaults, globs, port ranges, federation', async (t) => {
  t.same(parsePolicy('mode: explicit\n', opts), { mode: 'explicit', allowWithin: [], rules: [] })
  const p = parsePolicy(
    rule(
      '{ spiffeId: "spiffe://other.org/*/db", ports: ["8000-8080", 443, 8081] }',
      '{ spiffeId: "spiffe://example.org/ns/prod/*" }',
    ),
    { trustDomain: 'example.org', federatesWith: ['other.org'] },
  )
  t.same(p.rules[0]?.to.ports, [
    { from: 443, to: 443 },
    { from: 8000, to: 8081 },
  ])
  t.equal(p.rules[0]?.from.spiffeId, 'spiffe://example.org/ns/prod/*')
  t.equal(p.mode, 'baseline')
  t.equal(p.rules[0]?.action, 'allow')
})

t.test('malformed policies are refused with line and path', async (t) => {
  const cases: Array<[string, string, number, string, RegExp]> = [
    ['yaml syntax', 'mode: baseline\nrules: [\n', 3, '', /YAML/],
    ['duplicate key', 'mode: baseline\nmode: explicit\n', 2, '', /unique/],
    ['unknown top-level key', 'mode: baseline\nrulez: []\n', 2, 'rulez', /unknown key "rulez"/],
    ['unknown rule key', 'rules:\n  - name: r\n    frm: {}\n', 3, 'rules[0].frm', /unknown key "frm"/],
    [
      'unknown to key',
      rule('{ spiffeId: "spiffe://example.org/db", port: 5432 }'),
      4,
      'rules[0].to.port',
      /unknown key "port"/,
    ],
    [
      'unknown from key',
      rule(undefined, '{ spiffeId: "spiffe://example.org/web", ports: [1] }'),
      3,
      'rules[0].from.ports',
      /unknown key/,
    ],
    ['bad mode', 'mode: enforce\n', 1, 'mode', /neither baseline nor explicit/],
    ['mode wrong type', 'mode: [baseline]\n', 1, 'mode', /expected a single value/],
    ['rules not a list', 'rules: {}\n', 1, 'rules', /expected a list/],
    ['rule not a mapping', 'rules:\n  - web-to-db\n', 2, 'rules[0]', /expected a mapping/],
    [
      'bad action',
      'rules:\n  - name: r\n    action: reject\n    from: { selector: "k8s:ns:a" }\n    to: { selector: "k8s:ns:b" }\n',
      3,
      'rules[0].action',
      /"reject" is neither allow nor deny/,
    ],
    [
      'port out of range',
      rule('{ spiffeId: "spiffe://example.org/db", ports: [70000] }'),
      4,
      'rules[0].to.ports[0]',
      /^line 4, rules\[0\]\.to\.ports\[0\]: port 70000 is out of range 1-65535$/,
    ],
    [
      'port zero',
      rule('{ spiffeId: "spiffe://example.org/db", ports: [443, 0] }'),
      4,
      'rules[0].to.ports[1]',
      /port 0 is out of range/,
    ],
    [
      'port float',
      rule('{ spiffeId: "spiffe://example.org/db", ports: [44.5] }'),
      4,
      'rules[0].to.ports[0]',
      /not an integer/,
    ],
    [
      'port reversed range',
      rule('{ spiffeId: "spiffe://example.org/db", ports: ["9000-8000"] }'),
      4,
      'rules[0].to.ports[0]',
      /reversed/,
    ],
    [
      'port word',
      rule('{ spiffeId: "spiffe://example.org/db", ports: ["https"] }'),
      4,
      'rules[0].to.ports[0]',
      /neither a number nor a range/,
    ],
    [
      'empty ports',
      rule('{ spiffeId: "spiffe://example.org/db", ports: [] }'),
      4,
      'rules[0].to.ports',
      /is empty/,
    ],
    [
      'bad spiffe id',
      rule('{ spiffeId: "spiffe://example.org/db/" }'),
      4,
      'rules[0].to.spiffeId',
      /trailing slash|ends with "\/"/,
    ],
    [
      'not a spiffe id',
      rule(undefined, '{ spiffeId: "https://example.org/web" }'),
      3,
      'rules[0].from.spiffeId',
      /invalid scheme/,
    ],
    [
      'trust domain only',
      rule(undefined, '{ spiffeId: "spiffe://example.org" }'),
      3,
      'rules[0].from.spiffeId',
      /names the trust domain itself/,
    ],
    [
      'partial glob',
      rule(undefined, '{ spiffeId: "spiffe://example.org/web-*" }'),
      3,
      'rules[0].from.spiffeId',
      /whole path segment/,
    ],
    [
      'double star',
      rule(undefined, '{ spiffeId: "spiffe://example.org/ns/**" }'),
      3,
      'rules[0].from.spiffeId',
      /whole path segment/,
    ],
    [
      'glob trust domain',
      rule(undefined, '{ spiffeId: "spiffe://*/web" }'),
      3,
      'rules[0].from.spiffeId',
      /trust domain/,
    ],
    [
      'foreign trust domain',
      rule('{ spiffeId: "spiffe://tenant-b.org/db" }'),
      4,
      'rules[0].to.spiffeId',
      /trust domain "tenant-b.org", not "example.org"/,
    ],
    [
      'foreign glob',
      rule(undefined, '{ spiffeId: "spiffe://tenant-b.org/*" }'),
      3,
      'rules[0].from.spiffeId',
      /another|not "example.org"/,
    ],
    [
      'bad selector type',
      rule(undefined, '{ selector: "unx:uid:0" }'),
      3,
      'rules[0].from.selector',
      /unknown type "unx"/,
    ],
    [
      'bad code-DNA',
      rule(undefined, '{ selector: "unix:sha256:ABC" }'),
      3,
      'rules[0].from.selector',
      /64 lowercase hex/,
    ],
    [
      'selector wrong type',
      rule(undefined, '{ selector: 1000 }'),
      3,
      'rules[0].from.selector',
      /expected a string/,
    ],
    ['uppercase fqdn', rule('{ fqdn: "API.example.com" }'), 4, 'rules[0].to.fqdn', /lowercase/],
    ['inner wildcard', rule('{ fqdn: "a.*.example.com" }'), 4, 'rules[0].to.fqdn', /leftmost label/],
    ['partial wildcard', rule('{ fqdn: "api*.example.com" }'), 4, 'rules[0].to.fqdn', /leftmost label/],
    ['too broad wildcard', rule('{ fqdn: "*.com" }'), 4, 'rules[0].to.fqdn', /too broad/],
    ['trailing dot fqdn', rule('{ fqdn: "example.com." }'), 4, 'rules[0].to.fqdn', /must not end/],
    [
      'fqdn with spiffeId',
      rule('{ spiffeId: "spiffe://example.org/db", fqdn: "db.example.com" }'),
      4,
      'rules[0].to.fqdn',
      /cannot be combined/,
    ],
    ['empty from', rule(undefined, '{}'), 3, 'rules[0].from', /names nothing/],
    ['to with only ports', rule('{ ports: [443] }'), 4, 'rules[0].to', /names nothing/],
    ['null value', rule('{ spiffeId: }'), 4, 'rules[0].to.spiffeId', /has no value/],
    ['missing to', 'rules:\n  - name: r\n    from: { selector: "k8s:ns:a" }\n', 2, 'rules[0]', /has no "to"/],
    [
      'missing name',
      'rules:\n  - from: { selector: "k8s:ns:a" }\n    to: { selector: "k8s:ns:b" }\n',
      2,
      'rules[0]',
      /has no name/,
    ],
    [
      'bad name',
      'rules:\n  - name: "web to db"\n    from: { selector: "k8s:ns:a" }\n    to: { selector: "k8s:ns:b" }\n',
      2,
      'rules[0].name',
      /rule name/,
    ],
    [
      'duplicate rule name',
      'rules:\n  - name: r\n    from: { selector: "k8s:ns:a" }\n    to: { selector: "k8s:ns:b" }\n  - name: r\n    from: { selector: "k8s:ns:a" }\n    to: { selector: "k8s:ns:c" }\n',
      5,
      'rules[1].name',
      /duplicate rule name "r" \(first used at rules\[0\]\)/,
    ],
    ['allowWithin value', 'allowWithin:\n  - "k8s:ns:prod"\n', 2, 'allowWithin[0]', /not a selector key/],
    [
      'allowWithin unknown key',
      'allowWithin:\n  - "k8s:namespace"\n',
      2,
      'allowWithin[0]',
      /unknown key "namespace"/,
    ],
    ['allowWithin unknown type', 'allowWithin:\n  - "ns"\n', 2, 'allowWithin[0]', /unknown selector type/],
    [
      'allowWithin label without key',
      'allowWithin:\n  - "k8s:pod-label"\n',
      2,
      'allowWithin[0]',
      /inner key/,
    ],
    ['alias', 'mode: &m baseline\nrules:\n  - name: *m\n', 3, 'rules[0].name', /aliases are not allowed/],
    ['tag', 'mode: !!str baseline\n', 1, 'mode', /tags/],
    ['empty document', '', 1, '', /empty/],
    ['comment only', '# nothing yet\n', 1, '', /empty/],
    ['two documents', 'mode: baseline\n---\nmode: explicit\n', 2, '', /single YAML document/],
    ['unresolved tag', 'mode: baseline\nrules: !custom []\n', 2, '', /Unresolved tag/],
    ['numeric key', 'mode: baseline\n1: x\n', 2, '', /keys must be strings/],
    [
      'empty list item',
      'rules:\n  - name: a\n    from: { selector: "k8s:ns:a" }\n    to: { selector: "k8s:ns:b" }\n  -\n',
      5,
      'rules[1]',
      /expected a mapping/,
    ],
    [
      'missing to value',
      'rules:\n  - name: a\n    from: { selector: "k8s:ns:a" }\n    to:\n',
      4,
      'rules[0].to',
      /has no value/,
    ],
    ['allowWithin not a list', 'allowWithin: "k8s:ns"\n', 1, 'allowWithin', /expected a list/],
    ['top-level list', '- mode: baseline\n', 1, '', /expected a mapping/],
  ]
  for (const [name, text, line, path, message] of cases) {
    const err = refused(text)
    t.equal(err.code, 'POLICY_INVALID', `${name}: code`)
    t.equal(err.line, line, `${name}: line (${err.message})`)
    t.equal(err.path, path, `${name}: path (${err.message})`)
    t.match(err.message, message, `${name}: message`)
    t.match(err.message, new RegExp(`^line ${line}, `), `${name}: message names the line`)
  }
})

t.test('aliases are refused where they are used', async (t) => {
  const err = refused(
    'rules:\n  - &r\n    name: a\n    from: { selector: "k8s:ns:a" }\n    to: { selector: "k8s:ns:b" }\n  - *r\n',
  )
  t.equal(err.path, 'rules[1]')
  t.equal(err.line, 6)
  t.match(err.message, /aliases/)
})

t.test('misuse throws TypeError', async (t) => {
  t.throws(() => parsePolicy(42 as any, opts), TypeError)
  t.throws(() => parsePolicy('mode: baseline', {} as any), TypeError)
})
