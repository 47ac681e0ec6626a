import t from 'tap'
import { ConfigError, parseDuration, parseListen, resolveConfig } from '../../services/config.ts'

t.test('durations', async (t) => {
  t.equal(parseDuration('90'), 90)
  t.equal(parseDuration('5m'), 300)
  t.equal(parseDuration('1h'), 3600)
  t.equal(parseDuration('7d'), 604800)
  t.equal(parseDuration(42), 42)
  t.throws(() => parseDuration('soon'), ConfigError)
  t.throws(() => parseDuration('1w'), /write it like 90s/)
})

t.test('listen addresses', async (t) => {
  t.same(parseListen('127.0.0.1:8443'), { host: '127.0.0.1', port: 8443 })
  t.same(parseListen('[::1]:0'), { host: '::1', port: 0 })
  t.throws(() => parseListen('8443'), /HOST:PORT/)
  t.throws(() => parseListen('h:99999'), /HOST:PORT/)
})

t.test('defaults, precedence and unknown keys', async (t) => {
  const c = resolveConfig({ cwd: '/srv', env: {} })
  t.equal(c.dataDir, '/srv/.sigil')
  t.same(c.listen, { host: '127.0.0.1', port: 8443 })
  t.equal(c.store, 'sqlite:/srv/.sigil/sigil.db')
  t.equal(c.trustDomainDefaults.x509DefaultTtl, 3600)
  t.equal(c.trustDomainDefaults.jwtDefaultTtl, 300)
  t.equal(c.intermediateTtl, 86400)
  t.same(c.flows, { retention: 7 * 86400, maxPerTrustDomain: 200_000 }, 'flow retention defaults')
  t.same(resolveConfig({ file: { flows: { retention: '2d', maxPerTrustDomain: 10 } } }).flows, {
    retention: 2 * 86400,
    maxPerTrustDomain: 10,
  })
  t.throws(() => resolveConfig({ file: { flows: { retention: '10s' } } }), /flows.retention/)
  t.throws(() => resolveConfig({ file: { flows: { keep: 1 } } }), /unknown key "keep"/)
  const f = resolveConfig({
    cwd: '/srv',
    env: { SIGIL_LISTEN: '0.0.0.0:1' },
    flags: { listen: '127.0.0.1:2' },
    file: { listen: '127.0.0.1:3', trustDomainDefaults: { x509MaxTtl: '2h' } },
  })
  t.equal(f.listen.port, 2, 'flags beat env and file')
  t.equal(f.trustDomainDefaults.x509MaxTtl, 7200)
  t.throws(() => resolveConfig({ file: { listn: 'x' } }), /unknown key "listn"/)
  t.throws(() => resolveConfig({ file: { rateLimit: { max: 1, burst: 2 } } }), /unknown key "burst"/)
  t.equal(resolveConfig({ env: { SIGIL_KEK: 'abc' } }).kek, 'abc')
})
