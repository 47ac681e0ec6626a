import { readFileSync } from 'node:fs'
import t from 'tap'
import { parsePolicy } from '../../services/policy/parse.ts'
import { policyFromView, toPolicyJson } from '../../services/policy/view.ts'

const example = readFileSync(new URL('./fixtures/contract-example.yaml', import.meta.url), 'utf8')

t.test('policyFromView rebuilds what toPolicyJson shows', async (t) => {
  const policy = parsePolicy(example, { trustDomain: 'example.org' })
  const json = toPolicyJson(policy)
  t.same(policyFromView(json), policy)
  t.same(
    policyFromView(JSON.parse(JSON.stringify({ ...json, version: 3, text: 'x' }))),
    policy,
    'extra fields',
  )
  const ranges = parsePolicy(
    'rules:\n  - name: r\n    from: { selector: "k8s:ns:a" }\n    to: { selector: "k8s:ns:b", ports: ["8000-8080", 22] }\n',
    { trustDomain: 'example.org' },
  )
  t.same(toPolicyJson(ranges).rules[0]!.to.ports, [22, '8000-8080'])
  t.same(policyFromView(toPolicyJson(ranges)), ranges)
})

t.test('policyFromView refuses a malformed view with TypeError', async (t) => {
  const rule = { name: 'r', action: 'allow', from: { spiffeId: 'spiffe://a/b' }, to: { fqdn: 'a.b.c' } }
  const ok = { mode: 'baseline', allowWithin: [], rules: [rule] }
  t.ok(policyFromView(ok as never))
  for (const [what, view] of [
    ['no object', null],
    ['a bad mode', { ...ok, mode: 'strict' }],
    ['allowWithin not a list', { ...ok, allowWithin: 'k8s:ns' }],
    ['rules not a list', { ...ok, rules: {} }],
    ['a rule without name', { ...ok, rules: [{ ...rule, name: '' }] }],
    ['a bad action', { ...ok, rules: [{ ...rule, action: 'drop' }] }],
    ['from naming nothing', { ...ok, rules: [{ ...rule, from: {} }] }],
    ['to naming nothing', { ...ok, rules: [{ ...rule, to: { ports: [1] } }] }],
    ['a port out of range', { ...ok, rules: [{ ...rule, to: { fqdn: 'a.b.c', ports: [0] } }] }],
    ['a reversed range', { ...ok, rules: [{ ...rule, to: { fqdn: 'a.b.c', ports: ['9-1'] } }] }],
    ['a port that is no port', { ...ok, rules: [{ ...rule, to: { fqdn: 'a.b.c', ports: ['http'] } }] }],
    ['empty ports', { ...ok, rules: [{ ...rule, to: { fqdn: 'a.b.c', ports: [] } }] }],
  ] as const) {
    t.throws(() => policyFromView(view as never), TypeError, what)
  }
})
