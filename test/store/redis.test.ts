import { Redis } from 'ioredis'
import t from 'tap'
import { openStore } from '../../services/store/open.ts'
import { RedisStore } from '../../services/store/redis.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { runStoreConformance } from './conformance.ts'
import { apiToken, audit, entry, joinToken, jwtKey, rootCa, trustDomain } from './records.ts'
import { redisIntegrityProblems } from './redis-integrity.ts'

const server = await startRedis(t)
let n = 0

runStoreConformance(t, async () => new RedisStore(server.url, `conformance-${++n}:`))

const raw = new Redis(server.url)
t.teardown(() => raw.quit())

t.test('openStore opens redis:// with the default prefix, migrated', async (t) => {
  const store = await openStore(server.url)
  t.teardown(() => store.close())
  t.equal(store.kind, 'redis')
  t.equal(await raw.get('sigil:schema'), '1', 'schema version written under sigil:')
})

t.test('a RedisStore can take over an ioredis connection', async (t) => {
  const store = new RedisStore(new Redis(server.url), 'instance:')
  t.teardown(() => store.close())
  await store.migrate()
  t.equal(await store.setMetaIfAbsent('k', 'v'), true)
  t.equal(await raw.hget('instance:meta', 'k'), 'v', 'the prefix applies')
})

t.test('a newer schema is refused', async (t) => {
  await raw.set('future:schema', '99')
  const store = new RedisStore(server.url, 'future:')
  t.teardown(() => store.close())
  await t.rejects(store.migrate(), /newer than this build supports/)
})

t.test('trust domain names cannot break out of their keys', async (t) => {
  const store = new RedisStore(server.url, `names-${++n}:`)
  t.teardown(() => store.close())
  await store.migrate()
  await t.rejects(store.createTrustDomain(trustDomain('a}.test'), rootCa('a}.test')), TypeError)
  await t.rejects(store.getTrustDomain('{a.test'), TypeError)
})

t.test('a join token is single use across connections', async (t) => {
  const prefix = `multi-${++n}:`
  const stores = Array.from({ length: 5 }, () => new RedisStore(server.url, prefix))
  t.teardown(() => Promise.all(stores.map((s) => s.close())))
  await stores[0]!.migrate()
  await stores[0]!.createTrustDomain(trustDomain('a.test'), rootCa('a.test'))
  await stores[0]!.createJoinToken(joinToken('a.test', 'h', 10_000))
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) => stores[i % 5]!.consumeJoinToken('a.test', 'h', 1)),
  )
  t.equal(results.filter((r) => r.ok).length, 1, 'exactly one of 50 consumers on 5 connections')
})

t.test('the keyspace stays consistent, and a deleted domain leaves no key', async (t) => {
  const prefix = `keyspace-${++n}:`
  const store = new RedisStore(server.url, prefix)
  t.teardown(() => store.close())
  await store.migrate()
  const now = Date.now()
  for (const td of ['a.test', 'b.test']) {
    await store.createTrustDomain(trustDomain(td), rootCa(td))
    await store.addRootCa(rootCa(td, 'root-2', 2_000))
    await store.publishJwtKey(jwtKey(td, 'k1', 5))
    await store.publishJwtKey(jwtKey(td, 'k2', now + 60_000))
    await store.pruneJwtKeys(td, 10)
    for (let i = 0; i < 300; i++) {
      await store.createEntry(
        entry(td, `e${i}`, {
          parentId: `spiffe://${td}/agent/${i % 9}`,
          selectors: [{ type: 'unix', value: `uid:${i}` }],
        }),
      )
    }
    for (let i = 0; i < 300; i += 3) {
      await store.updateEntry(
        td,
        `e${i}`,
        { parentId: `spiffe://${td}/agent/x`, selectors: [{ type: 'k8s', value: `ns:${i}` }] },
        3_000,
      )
    }
    for (let i = 1; i < 300; i += 5) await store.deleteEntry(td, `e${i}`)
    await store.createJoinToken(joinToken(td, 'h1', now + 60_000))
    await store.createJoinToken(joinToken(td, 'h2', now + 60_000))
    await store.consumeJoinToken(td, 'h1', now)
    await store.appendAudit(audit(td, 1))
    await store.recordIssuances([
      {
        trustDomain: td,
        kind: 'x509',
        serial: '1',
        spiffeId: `spiffe://${td}/w`,
        issuedAt: now,
        expiresAt: now,
      },
    ])
  }
  await store.appendAudit(audit('', 2))
  await store.appendAudit(audit('deleted-long-ago.test', 3))
  await store.createApiToken(apiToken('t1', 'hash-1'))
  await store.createApiToken(apiToken('t2', 'hash-2'))
  await store.deleteApiToken('t1')

  t.strictSame(await redisIntegrityProblems(raw, prefix), [], 'consistent after a mixed workload')
  t.ok((await raw.keys(`${prefix}{b.test}:*`)).length > 10, 'b.test has keys')
  t.equal(await store.deleteTrustDomain('b.test'), true)
  t.strictSame(await raw.keys(`${prefix}{b.test}:*`), [], 'none are left after delete')
  t.strictSame(await redisIntegrityProblems(raw, prefix), [], 'consistent after the delete')
  t.equal((await store.listEntries('a.test')).length, 240, 'a.test is untouched')
})
