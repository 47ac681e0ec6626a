import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse, parseAllDocuments } from 'yaml'
import { parsePolicy } from '../../services/policy/parse.ts'
import { toCiliumNetworkPolicy, toKubernetesNetworkPolicy, toYaml } from '../../services/policy/recommend.ts'

const example = readFileSync(new URL('./fixtures/contract-example.yaml', import.meta.url), 'utf8')
const opts = { trustDomain: 'example.org' }
const cluster: Record<string, [string, Record<string, string>]> = {
  'spiffe://example.org/web': ['shop', { app: 'web' }],
  'spiffe://example.org/db': ['data', { app: 'db' }],
}
const view = {
  namespaceOf: (id: string) => cluster[id]?.[0],
  labelsOf: (id: string) => cluster[id]?.[1],
}

function docs(text: string): any[] {
  const all = parseAllDocuments(text)
  if (!Array.isArray(all)) throw new Error('not a YAML stream')
  for (const d of all) if (d.errors.length > 0) throw d.errors[0]
  return all.map((d) => d.toJS())
}

t.test('toYaml round-trips through parsePolicy', async (t) => {
  const p = parsePolicy(example, opts)
  t.same(parsePolicy(toYaml(p), opts), p)
  const ranges = parsePolicy(
    'rules:\n  - name: r\n    from: { selector: "k8s:ns:a" }\n    to: { selector: "k8s:ns:b", ports: ["8000-8080", 22] }\n',
    opts,
  )
  t.same(parse(toYaml(ranges)).rules[0].to.ports, [22, '8000-8080'])
  t.same(parsePolicy(toYaml(ranges), opts), ranges)
})

t.test('Kubernetes NetworkPolicy', async (t) => {
  const text = toKubernetesNetworkPolicy(parsePolicy(example, opts), view)
  const out = docs(text)
  t.equal(out.length, 1, 'only web-to-db is expressible')
  const np = out[0]
  t.equal(np.apiVersion, 'networking.k8s.io/v1')
  t.equal(np.kind, 'NetworkPolicy')
  t.same(np.metadata.namespace, 'data')
  t.match(np.metadata.name, /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/)
  t.same(np.spec.podSelector, { matchLabels: { app: 'db' } })
  t.same(np.spec.ingress, [
    {
      from: [
        {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } },
          podSelector: { matchLabels: { app: 'web' } },
        },
      ],
      ports: [{ protocol: 'TCP', port: 5432 }],
    },
  ])
  t.match(text, /# not exported: rule web-to-s3: NetworkPolicy cannot name an FQDN/)
  t.match(text, /# not exported: rule no-debug-shells: NetworkPolicy cannot deny/)
  t.match(text, /# not exported: allowWithin k8s:ns/)
  t.match(text, /baseline mode/)
})

t.test('NetworkPolicy skips what it cannot express and still parses', async (t) => {
  const p = parsePolicy(
    `mode: explicit
rules:
  - name: dna
    from: { spiffeId: "spiffe://example.org/web", selector: "unix:sha256:${'c'.repeat(64)}" }
    to: { spiffeId: "spiffe://example.org/db" }
  - name: glob
    from: { spiffeId: "spiffe://example.org/ns/*" }
    to: { spiffeId: "spiffe://example.org/db" }
  - name: unknown
    from: { spiffeId: "spiffe://example.org/vm" }
    to: { spiffeId: "spiffe://example.org/db", ports: ["8000-8080"] }
  - name: range
    from: { spiffeId: "spiffe://example.org/web" }
    to: { spiffeId: "spiffe://example.org/db", ports: ["8000-8080"] }
`,
    opts,
  )
  const text = toKubernetesNetworkPolicy(p, view)
  t.match(text, /rule dna: selector criteria \(including code-DNA\)/)
  t.match(text, /rule glob: source spiffe:\/\/example.org\/ns\/\* is a glob/)
  t.match(text, /rule unknown: source spiffe:\/\/example.org\/vm has no known namespace/)
  const out = docs(text)
  t.equal(out.length, 1)
  t.same(out[0].spec.ingress[0].ports, [{ protocol: 'TCP', port: 8000, endPort: 8080 }])
  t.same(
    docs(toKubernetesNetworkPolicy(parsePolicy('mode: explicit', opts), view)),
    [{}],
    'nothing to export is still YAML',
  )
})

t.test('CiliumNetworkPolicy expresses FQDNs and denies', async (t) => {
  const text = toCiliumNetworkPolicy(parsePolicy(example, opts), view)
  const out = docs(text)
  t.equal(out.length, 2)
  t.ok(out.every((d) => d.apiVersion === 'cilium.io/v2' && d.kind === 'CiliumNetworkPolicy'))
  const [db, s3] = out
  t.equal(db.metadata.namespace, 'data')
  t.same(db.spec.endpointSelector, { matchLabels: { app: 'db', 'k8s:io.kubernetes.pod.namespace': 'data' } })
  t.same(db.spec.ingress[0].fromEndpoints, [
    { matchLabels: { app: 'web', 'k8s:io.kubernetes.pod.namespace': 'shop' } },
  ])
  t.same(db.spec.ingress[0].toPorts, [{ ports: [{ port: '5432', protocol: 'TCP' }] }])
  t.equal(s3.metadata.namespace, 'shop')
  t.same(s3.spec.egress[0].toFQDNs, [{ matchPattern: '*.s3.amazonaws.com' }])
  t.same(s3.spec.egress[1].toPorts[0].rules, { dns: [{ matchPattern: '*' }] }, 'DNS visibility for toFQDNs')
  t.match(text, /rule no-debug-shells: selector criteria/)

  const deny = parsePolicy(
    'rules:\n  - name: no\n    action: deny\n    from: { spiffeId: "spiffe://example.org/web" }\n    to: { spiffeId: "spiffe://example.org/db" }\n',
    opts,
  )
  const [d] = docs(toCiliumNetworkPolicy(deny, view))
  t.same(d.spec.ingressDeny, [
    { fromEndpoints: [{ matchLabels: { app: 'web', 'k8s:io.kubernetes.pod.namespace': 'shop' } }] },
  ])
  t.equal(d.spec.ingress, undefined)
})
