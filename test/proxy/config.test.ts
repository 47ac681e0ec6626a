// The proxy configuration parser and the CONNECT request parser: strict, with the line and field of
// every refusal.

import t from 'tap'
import { ProxyConfigError, parseProxyConfig } from '../../agents/proxy/config.ts'
import { ConnectRequestError, parseConnectHead } from '../../agents/proxy/connect-request.ts'

const good = `mesh:
  listen: 0.0.0.0:15008
services:
  - name: db
    spiffeId: spiffe://example.org/db
    forward: 127.0.0.1:5432
upstreams:
  - name: db
    listen: 127.0.0.1:15432
    spiffeId: spiffe://example.org/db
    agent: 10.0.0.7:15008
  - name: v6
    listen: "[::1]:15433"
    spiffeId: spiffe://example.org/db
    agent: "[fd00::7]:15008"
    service: db
egress:
  listen: 127.0.0.1:3128
`

t.test('the contract example parses', async (t) => {
  const c = parseProxyConfig(good)
  t.same(c.mesh, { listen: { host: '0.0.0.0', port: 15008 } })
  t.same(c.services, [
    { name: 'db', spiffeId: 'spiffe://example.org/db', forward: { host: '127.0.0.1', port: 5432 } },
  ])
  t.equal(c.upstreams[0]!.service, 'db', 'service defaults to the upstream name')
  t.same(c.upstreams[1]!.agent, { host: 'fd00::7', port: 15008 })
  t.same(c.egress, { listen: { host: '127.0.0.1', port: 3128 } })
})

const bad: Array<[string, string, RegExp]> = [
  [
    'unknown top-level key',
    'mesh: { listen: "127.0.0.1:1" }\nsidecar: true\n',
    /line 2, sidecar: unknown key/,
  ],
  [
    'unknown service key',
    'mesh: { listen: "127.0.0.1:1" }\nservices:\n  - name: db\n    spiffeId: spiffe://e.org/db\n    forward: 127.0.0.1:1\n    port: 3\n',
    /line 6, services\[0\]\.port: unknown key/,
  ],
  ['bad port', 'egress: { listen: "127.0.0.1:70000" }\n', /egress\.listen: port 70000 is out of range/],
  ['no port', 'egress: { listen: "127.0.0.1" }\n', /expected HOST:PORT/],
  [
    'services without a mesh port',
    'services:\n  - { name: db, spiffeId: "spiffe://e.org/db", forward: "127.0.0.1:1" }\n',
    /add mesh\.listen/,
  ],
  [
    'not a SPIFFE ID',
    'upstreams:\n  - { name: db, listen: "127.0.0.1:1", spiffeId: "https://db", agent: "10.0.0.1:1" }\n',
    /upstreams\[0\]\.spiffeId/,
  ],
  [
    'upstream without listen or match',
    'upstreams:\n  - { name: db, spiffeId: "spiffe://e.org/db", agent: "10.0.0.1:1" }\n',
    /give listen/,
  ],
  [
    'match without transparent',
    'upstreams:\n  - { name: db, match: "10.0.0.9:5432", spiffeId: "spiffe://e.org/db", agent: "10.0.0.1:1" }\n',
    /needs transparent\.listen/,
  ],
  [
    'duplicate names',
    'mesh: { listen: "127.0.0.1:1" }\nservices:\n  - { name: db, spiffeId: "spiffe://e.org/db", forward: "127.0.0.1:1" }\n  - { name: db, spiffeId: "spiffe://e.org/db", forward: "127.0.0.1:2" }\n',
    /line 4, services\[1\]\.name: service db is listed twice/,
  ],
  [
    'a name with capitals',
    'mesh: { listen: "127.0.0.1:1" }\nservices:\n  - { name: DB, spiffeId: "spiffe://e.org/db", forward: "127.0.0.1:1" }\n',
    /DNS label/,
  ],
  [
    'agent and tunnel together',
    'broker: { servers: ["10.0.0.1:8444"] }\nupstreams:\n  - { name: db, listen: "127.0.0.1:1", spiffeId: "spiffe://e.org/db", agent: "10.0.0.1:1", tunnel: x }\n',
    /exactly one of agent/,
  ],
  [
    'a tunnel without brokers',
    'upstreams:\n  - { name: db, listen: "127.0.0.1:1", spiffeId: "spiffe://e.org/db", tunnel: x }\n',
    /needs broker\.servers/,
  ],
  ['an empty broker list', 'broker: { servers: [] }\n', /at least one broker/],
  ['not YAML', 'mesh: [\n', /line \d/],
]

for (const [what, text, message] of bad) {
  t.test(`refused: ${what}`, async (t) => {
    t.throws(() => parseProxyConfig(text), ProxyConfigError)
    try {
      parseProxyConfig(text)
    } catch (err) {
      t.match((err as Error).message, message)
    }
  })
}

t.test('CONNECT request heads', async (t) => {
  t.same(parseConnectHead('CONNECT Example.COM.:443 HTTP/1.1\r\nHost: x\r\n'), {
    host: 'example.com',
    port: 443,
  })
  t.same(parseConnectHead('CONNECT [::1]:8443 HTTP/1.1\r\n'), { host: '::1', port: 8443 })
  const refusals: Array<[string, number]> = [
    ['GET / HTTP/1.1\r\n', 405],
    ['CONNECT example.com HTTP/1.1\r\n', 400],
    ['CONNECT example.com:99999 HTTP/1.1\r\n', 400],
    ['\x16\x03\x01garbage\r\n', 400],
    ['CONNECT a b:1 HTTP/1.1\r\n', 400],
  ]
  for (const [head, status] of refusals) {
    try {
      parseConnectHead(head)
      t.fail(`accepted ${JSON.stringify(head)}`)
    } catch (err) {
      t.type(err, ConnectRequestError)
      t.equal((err as ConnectRequestError).status, status, JSON.stringify(head))
    }
  }
})
