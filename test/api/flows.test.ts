// Flow reports: agents send them over mTLS into their own trust domain (the server sets who reported
// which side), bad batches are refused whole, retention prunes by age and count, and viewers list them
// and see the graph as JSON or Graphviz DOT.

import t, { type Test } from 'tap'
import { ServerError } from '../../agents/daemon/server-client.ts'
import { ManualClock } from '../../services/clock.ts'
import type { FlowRecord } from '../../services/flows/flow.ts'
import { buildTestApp, type TestApp } from '../helpers/app.ts'
import { attestTestAgent, type TestAgent } from '../helpers/test-agent.ts'

const NODE1 = 'spiffe://a.org/sigil/agent/node1'
const NODE2 = 'spiffe://a.org/sigil/agent/node2'

async function setup(t: Test, opts: Parameters<typeof buildTestApp>[1] = {}) {
  const h = await buildTestApp(t, { https: true, ...opts })
  for (const name of ['a.org', 'b.org']) await h.call('POST', '/v1/trust-domains', { name })
  const node1 = await attestTestAgent(t, h, 'a.org', 'node1')
  const node2 = await attestTestAgent(t, h, 'a.org', 'node2')
  const other = await attestTestAgent(t, h, 'b.org', 'node1')
  return { h, node1, node2, other }
}

function record(id: string, start: number, overrides: Partial<FlowRecord> = {}): FlowRecord {
  return {
    id,
    side: 'egress',
    start,
    durationMs: 20,
    source: {
      spiffeId: 'spiffe://a.org/web',
      pid: 4242,
      path: '/srv/web/bin/web',
      sha256: 'cd'.repeat(32),
      selectors: ['unix:uid:1000', 'k8s:ns:shop'],
    },
    destination: { spiffeId: 'spiffe://a.org/db', service: 'db', port: 5432 },
    bytesOut: 300,
    bytesIn: 4_000,
    verdict: 'allowed',
    rule: 'web-to-db',
    reason: 'allow rule web-to-db',
    mode: 'baseline',
    policyVersion: 3,
    ...overrides,
  }
}

async function report(agent: TestAgent, flows: unknown[]): Promise<{ status: number; body: any }> {
  try {
    return await agent.client.post('/v1/agent/flows', { flows })
  } catch (err) {
    if (err instanceof ServerError)
      return { status: err.status, body: { error: { code: err.code, message: err.message } } }
    throw err
  }
}

const list = async (h: TestApp, query = '', td = 'a.org') =>
  (await h.call('GET', `/v1/trust-domains/${td}/flows${query}`)).json

t.test('an agent reports flows into its own trust domain; the server says which agent', async (t) => {
  const { h, node1, node2, other } = await setup(t)
  const now = Date.now()
  const egress = record('flow-1', now - 1_000, {
    source: { ...record('x', 0).source, agent: 'spiffe://a.org/sigil/agent/liar' },
    destination: { ...record('x', 0).destination, agent: 'spiffe://a.org/sigil/agent/liar' },
  })
  const res = await report(node1, [egress])
  t.equal(res.status, 200, JSON.stringify(res.body))
  t.strictSame(res.body, { accepted: 1 })
  const ingress = record('flow-1', now - 1_000, {
    side: 'ingress',
    source: { spiffeId: 'spiffe://a.org/web', agent: 'spiffe://a.org/sigil/agent/liar' },
    destination: { spiffeId: 'spiffe://a.org/db', port: 5432, selectors: ['k8s:ns:data'] },
  })
  t.strictSame((await report(node2, [ingress])).body, { accepted: 1 })

  const { flows } = await list(h)
  t.equal(flows.length, 2, 'both sides are stored')
  const [i, e] = [flows.find((f: any) => f.side === 'ingress'), flows.find((f: any) => f.side === 'egress')]
  t.equal(e.source.agent, NODE1, "egress: the source's agent is the reporting agent, whatever the body said")
  t.notOk('agent' in e.destination, 'and the far side is not taken from the body')
  t.equal(i.destination.agent, NODE2, "ingress: the destination's agent is the reporting agent")
  t.notOk('agent' in i.source)
  t.equal(e.start, new Date(now - 1_000).toISOString(), 'times are RFC 3339')
  t.equal(e.source.sha256, 'cd'.repeat(32))
  t.equal(e.policyVersion, 3)
  t.strictSame((await list(h, '', 'b.org')).flows, [], 'b.org has none')

  // The far end may be of another (federated) trust domain; the reporting agent's own end may not.
  const federated = record('flow-2', now, { destination: { spiffeId: 'spiffe://b.org/api', port: 443 } })
  t.equal((await report(node1, [federated])).status, 200, 'a far end in another trust domain is data')
  const foreign = record('flow-3', now, { source: { spiffeId: 'spiffe://b.org/web' } })
  const refused = await report(node1, [foreign])
  t.equal(refused.status, 400)
  t.equal(refused.body.error.code, 'FLOW_INVALID')
  t.match(refused.body.error.message, /flows\[0\]\.source\.spiffeId: .*not in trust domain a\.org/)
  const foreignIngress = record('flow-3', now, {
    side: 'ingress',
    destination: { spiffeId: 'spiffe://b.org/db', port: 5432 },
  })
  t.equal((await report(node1, [foreignIngress])).body.error.code, 'FLOW_INVALID', 'nor on ingress')

  t.strictSame(
    (await report(other, [record('b-1', now, { source: { spiffeId: 'spiffe://b.org/web' } })])).body,
    {
      accepted: 1,
    },
  )
  t.strictSame(
    (await list(h, '', 'b.org')).flows.map((f: any) => [f.id, f.source.agent]),
    [['b-1', 'spiffe://b.org/sigil/agent/node1']],
    "b.org's agent reports into b.org",
  )
  t.equal((await list(h)).flows.length, 3, 'and a.org got nothing of it')
  const unauthenticated = await h.call('POST', '/v1/agent/flows', { flows: [egress] }, null)
  t.equal(unauthenticated.statusCode, 401, 'without the agent SVID as client certificate')
  t.equal(unauthenticated.json.error.code, 'UNAUTHENTICATED')
  const events = (await h.call('GET', '/v1/trust-domains/a.org/audit')).json.events
  t.notOk(
    events.some((e: { target: string }) => e.target === '/v1/agent/flows'),
    'flow reports are data: not audited',
  )
})

t.test('a batch with a bad record is refused whole', async (t) => {
  const { h, node1 } = await setup(t)
  const now = Date.now()
  const good = record('good', now)
  const bad: Array<[string, unknown, string, RegExp]> = [
    [
      'a malformed SPIFFE ID',
      record('b', now, { source: { spiffeId: 'spiffe://a.org/../x' } }),
      'FLOW_INVALID',
      /source\.spiffeId/,
    ],
    [
      'a bad selector',
      record('b', now, { source: { selectors: ['unix:uid:abc'] } }),
      'FLOW_INVALID',
      /selectors\[0\]/,
    ],
    [
      'a wildcard name',
      record('b', now, { destination: { fqdn: '*.example.com', port: 443 } }),
      'FLOW_INVALID',
      /wildcard/,
    ],
    [
      'a bad name',
      record('b', now, { destination: { fqdn: 'exa mple.com', port: 443 } }),
      'FLOW_INVALID',
      /label/,
    ],
    ['a start in the future', record('b', now + 3_600_000), 'FLOW_INVALID', /future/],
    ['a relative path', record('b', now, { source: { path: 'bin/sh' } }), 'FLOW_INVALID', /absolute/],
    ['an unknown field', { ...record('b', now), extra: 1 }, 'UNKNOWN_FIELD', /extra/],
    ['an unknown verdict', record('b', now, { verdict: 'maybe' as never }), 'VALIDATION_FAILED', /verdict/],
    ['a bad id', record('b c', now), 'VALIDATION_FAILED', /id/],
    ['a port out of range', record('b', now, { destination: { port: 70000 } }), 'VALIDATION_FAILED', /port/],
    ['a missing field', { ...record('b', now), reason: undefined }, 'VALIDATION_FAILED', /reason/],
  ]
  for (const [what, flow, code, message] of bad) {
    const res = await report(node1, [good, flow])
    t.equal(res.status, 400, what)
    t.equal(res.body.error.code, code, what)
    t.match(res.body.error.message, message, what)
  }
  t.equal((await report(node1, [])).body.error.code, 'VALIDATION_FAILED', 'an empty batch')
  const tooMany = Array.from({ length: 1001 }, (_, i) => record(`m${i}`, now))
  t.equal((await report(node1, tooMany)).body.error.code, 'VALIDATION_FAILED', 'more than 1000')
  t.strictSame((await list(h)).flows, [], 'nothing was stored')
  t.strictSame((await report(node1, [good])).body, { accepted: 1 }, 'the good record alone is fine')
})

t.test('retention: by age and by count', async (t) => {
  const clock = new ManualClock(Date.now())
  const { h, node1 } = await setup(t, { clock, flows: { retention: 600, maxPerTrustDomain: 5 } })
  const start = clock.now()
  const batch = Array.from({ length: 8 }, (_, i) => record(`r${i}`, start - 8_000 + i * 1_000))
  t.strictSame((await report(node1, batch)).body, { accepted: 8 })
  t.strictSame(
    (await list(h)).flows.map((f: any) => f.id),
    ['r7', 'r6', 'r5', 'r4', 'r3'],
    'the newest 5 are kept',
  )
  clock.advance(30 * 60_000)
  await report(node1, [record('later', clock.now())])
  t.strictSame(
    (await list(h)).flows.map((f: any) => f.id),
    ['later'],
    'flows older than the retention are dropped on the next report',
  )
})

t.test('listing: filters, limits, windows', async (t) => {
  const { h, node1, node2 } = await setup(t)
  const now = Date.now()
  await report(node1, [
    record('a', now - 50_000),
    record('b', now - 40_000, { verdict: 'denied', rule: 'no-debug-shells', reason: 'deny rule' }),
    record('c', now - 30_000, {
      source: { path: '/usr/bin/curl' },
      destination: { fqdn: 'API.Example.COM.', port: 443 },
      verdict: 'unidentified',
      reason: 'source has no SPIFFE ID; baseline lets it through',
    }),
  ])
  await report(node2, [record('a', now - 50_000, { side: 'ingress' })])
  const ids = async (q: string) => (await list(h, q)).flows.map((f: any) => `${f.id}/${f.side}`)
  t.strictSame(await ids(''), ['c/egress', 'b/egress', 'a/ingress', 'a/egress'], 'newest first')
  t.strictSame(await ids('?verdict=denied'), ['b/egress'])
  t.strictSame(await ids('?side=ingress'), ['a/ingress'])
  t.strictSame(await ids('?spiffeId=spiffe://a.org/db'), ['b/egress', 'a/ingress', 'a/egress'])
  t.strictSame(await ids('?limit=1'), ['c/egress'])
  t.strictSame(await ids('?since=35'), ['c/egress'], 'since: seconds before now')
  t.strictSame(
    await ids(`?since=${new Date(now - 45_000).toISOString()}`),
    ['c/egress', 'b/egress'],
    'or a time',
  )
  t.strictSame(await ids(`?until=${new Date(now - 45_000).toISOString()}`), ['a/ingress', 'a/egress'])
  t.equal((await list(h, '?verdict=denied')).flows[0].rule, 'no-debug-shells')
  t.equal(
    (await list(h, '?verdict=unidentified')).flows[0].destination.fqdn,
    'api.example.com',
    'names normalized',
  )
  t.equal((await list(h, '?limit=5001')).error.code, 'VALIDATION_FAILED')
  t.equal((await list(h, '?since=yesterday')).error.code, 'VALIDATION_FAILED')
  t.equal((await list(h, '?verdict=fine')).error.code, 'VALIDATION_FAILED')
  t.equal((await list(h, '?nope=1')).error.code, 'UNKNOWN_FIELD')
})

t.test('the flow graph, as JSON and as Graphviz DOT', async (t) => {
  const { h, node1, node2 } = await setup(t)
  const now = Date.now()
  const hostile = '"<img src=x>"'
  await report(node1, [
    record('f1', now - 5_000),
    record('f2', now - 4_000, { bytesOut: 1, bytesIn: 2 }),
    record('f3', now - 3_000, {
      verdict: 'denied',
      rule: 'no-debug-shells',
      reason: 'deny rule no-debug-shells',
    }),
    record('f4', now - 2_000, {
      source: { path: '/usr/bin/curl', pid: 9 },
      destination: { fqdn: 'api.example.com', port: 443 },
      verdict: 'unidentified',
      reason: 'source has no SPIFFE ID; baseline lets it through',
    }),
    record('f5', now - 1_000, {
      source: { path: `/opt/${hostile}\\n` },
      destination: { service: hostile, port: 9000 },
      verdict: 'unidentified',
      reason: 'x',
    }),
    record('old', now - 7_200_000),
  ])
  // The callee's side of f1: the same flow, counted once.
  await report(node2, [
    record('f1', now - 5_000, { side: 'ingress', source: { spiffeId: 'spiffe://a.org/web' } }),
  ])

  const res = await h.call('GET', '/v1/trust-domains/a.org/flows/graph')
  t.equal(res.statusCode, 200, res.body)
  const graph = res.json
  const byId = new Map(graph.nodes.map((n: any) => [n.id, n]))
  t.strictSame(byId.get('spiffe://a.org/web'), {
    id: 'spiffe://a.org/web',
    kind: 'workload',
    label: 'spiffe://a.org/web',
    spiffeId: 'spiffe://a.org/web',
  })
  t.strictSame(byId.get('fqdn:api.example.com'), {
    id: 'fqdn:api.example.com',
    kind: 'external',
    label: 'api.example.com',
    fqdn: 'api.example.com',
  })
  const curl = graph.nodes.find((n: any) => n.label.includes('/usr/bin/curl'))
  t.match(curl, { kind: 'unidentified', label: `unidentified: /usr/bin/curl on ${NODE1}` })
  t.equal(
    graph.nodes.length,
    6,
    'web, db, api.example.com, curl, the hostile process and the hostile service',
  )
  const db = graph.edges.find((e: any) => e.target === 'spiffe://a.org/db')
  t.match(db, {
    id: 'spiffe://a.org/web -> spiffe://a.org/db:5432',
    source: 'spiffe://a.org/web',
    port: 5432,
    verdicts: { allowed: 2, denied: 1, unidentified: 0 },
    flows: 3,
    bytesOut: 601,
    bytesIn: 8_002,
    rules: ['no-debug-shells', 'web-to-db'],
    lastSeen: new Date(now - 3_000).toISOString(),
  })
  t.equal(graph.edges.length, 3)
  t.equal(graph.edges.find((e: any) => e.source === curl.id).verdicts.unidentified, 1)

  const denied = (await h.call('GET', '/v1/trust-domains/a.org/flows/graph?verdict=denied')).json
  t.strictSame(
    denied.edges.map((e: any) => [e.id, e.flows]),
    [['spiffe://a.org/web -> spiffe://a.org/db:5432', 1]],
    'filtered by verdict',
  )
  const api = (
    await h.call(
      'GET',
      `/v1/trust-domains/a.org/flows/graph?spiffeId=${encodeURIComponent('spiffe://a.org/db')}`,
    )
  ).json
  t.equal(api.edges.length, 1, 'filtered by SPIFFE ID')
  t.equal(
    (await h.call('GET', '/v1/trust-domains/a.org/flows/graph?since=10800')).json.edges[0].flows,
    4,
    'since',
  )

  const dot = await h.call('GET', '/v1/trust-domains/a.org/flows/graph?format=dot')
  t.equal(dot.statusCode, 200)
  t.match(dot.headers['content-type'], /^text\/vnd\.graphviz/)
  const text = dot.body
  t.match(text, /^digraph sigil_flows \{\n/)
  t.match(text, /\}\n$/)
  // Every quoted string is well formed and decodes back to the label it came from.
  const quoted = /"((?:[^"\\]|\\.)*)"/g
  const decoded = [...text.matchAll(quoted)].map((m) =>
    m[1]!.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c)),
  )
  for (const n of graph.nodes) t.ok(decoded.includes(n.label), `label ${JSON.stringify(n.label)} round-trips`)
  const outside = text.replace(quoted, 'Q').replaceAll(' -> ', ' to ')
  t.notMatch(outside, /[<>]/, 'no markup outside quoted strings')
  t.notMatch(outside, /["\\]/, 'every quote and backslash is inside a well-formed string')
  t.match(text, /\\"<img src=x>\\"/, 'quotes inside a label are escaped')
  t.match(text, /\\\\n/, 'a backslash in a name stays a backslash')
  const edgeLines = text.split('\n').filter((l) => l.includes('->'))
  t.equal(edgeLines.length, 3)
  t.ok(
    edgeLines.some((l) => /label="5432\\n2 allowed, 1 denied", color=red/.test(l)),
    'a denied flow makes the edge red',
  )
  t.ok(
    edgeLines.some((l) => /color=orange/.test(l)),
    'unidentified edges are orange',
  )
  const allowedOnly = await h.call('GET', '/v1/trust-domains/a.org/flows/graph?format=dot&verdict=allowed')
  t.match(allowedOnly.body, /color=green/, 'allowed edges are green')
  t.equal(
    (await h.call('GET', '/v1/trust-domains/a.org/flows/graph?format=svg')).json.error.code,
    'VALIDATION_FAILED',
  )
})
