import { Redis } from 'ioredis'
import t from 'tap'
import { openStore } from '../../services/store/open.ts'
import { REDIS_SCHEMA_VERSION, RedisStore } from '../../services/store/redis.ts'
import type { ChangeEvent } from '../../services/store/store.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { runStoreConformance } from './conformance.ts'
import { collect, until } from './conformance-watch.ts'
import {
  agent,
  apiToken,
  audit,
  bundleText,
  entry,
  federation,
  flow,
  joinToken,
  jwtKey,
  policy,
  rootCa,
  trustDomain,
} from './records.ts'
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
  t.equal(await raw.get('sigil:schema'), String(REDIS_SCHEMA_VERSION), 'schema version written under sigil:')
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

t.test('a policy version is written once across connections', async (t) => {
  const prefix = `policy-race-${++n}:`
  const stores = Array.from({ length: 5 }, () => new RedisStore(server.url, prefix))
  t.teardown(() => Promise.all(stores.map((s) => s.close())))
  await stores[0]!.migrate()
  await stores[0]!.createTrustDomain(trustDomain('a.test'), rootCa('a.test'))
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => stores[i % 5]!.putPolicy(policy('a.test', 1, { text: `w${i}` }), 0)),
  )
  t.equal(results.filter(Boolean).length, 1, 'exactly one of 20 writers on 5 connections')
  t.equal((await stores[4]!.listPolicyVersions('a.test', 10)).length, 1)
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
    for (let i = 0; i < 20; i++) {
      const a = agent(td, `n${i}`, { canReattest: i % 2 === 0 })
      await store.attestAgent(a)
      if (i % 3 === 0)
        await store.renewAgentSvid(td, a.spiffeId, a.serial, {
          serial: 'ff',
          svidExpiresAt: 9,
          lastSeenAt: 9,
        })
      if (i % 4 === 0) await store.attestAgent({ ...a, serial: 'ee' })
      if (i % 5 === 0) await store.banAgent(td, a.spiffeId)
      if (i % 7 === 0) await store.evictAgent(td, a.spiffeId)
      await store.claimOnce(td, `c${i}`, 2_000 + i, 1_000 + i)
    }
    for (let v = 1; v <= 105; v++) await store.putPolicy(policy(td, v), v - 1)
    const retention = { maxAgeMs: 60_000, maxCount: 50 }
    for (let i = 0; i < 120; i += 10) {
      const batch = Array.from({ length: 10 }, (_, j) =>
        flow(td, `f${i + j}`, now - 90_000 + (i + j) * 1_000),
      )
      batch.push(flow(td, `f${i}`, now - 90_000 + i * 1_000, { side: 'ingress' }))
      await store.appendFlows(td, batch, retention, now)
    }
    for (const foreign of ['p1.org', 'p2.org', 'p3.org']) {
      await store.createFederation(federation(td, foreign))
      await store.putFederationBundle(td, foreign, {
        bundle: bundleText(2, foreign),
        sequence: 2,
        refreshHintSeconds: 5,
        refreshedAt: now,
      })
      await store.recordFederationError(td, foreign, 'endpoint "down"', now)
    }
    await store.deleteFederation(td, 'p3.org')
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
  t.equal((await store.listAgents('a.test')).length, 17, 'agents too')
})

t.test('watch: stores sharing a Redis hear each other, one path for all', async (t) => {
  const prefix = `watch-${++n}:`
  const [a, b, other] = [prefix, prefix, `watch-other-${n}:`].map((p) => new RedisStore(server.url, p))
  t.teardown(() => Promise.all([a, b, other].map((s) => s!.close())))
  await a!.migrate()
  await other!.migrate()
  const heard = [a!, b!, other!].map(collect)
  // A store's commands wait for its first subscription: after ping, the watch is in place.
  await Promise.all([a!.ping(), b!.ping(), other!.ping()])

  await a!.createTrustDomain(trustDomain('a.test'), rootCa('a.test'))
  await b!.createEntry(entry('a.test', 'e1'))
  await raw.publish(`${prefix}events`, 'not an event')
  await raw.publish(`${prefix}events`, JSON.stringify({ trustDomain: 'a.test', kind: 'unknown' }))
  await b!.attestAgent(agent('a.test', 'n1'))
  const expected: ChangeEvent[] = [
    { trustDomain: 'a.test', kind: 'trust-domain' },
    { trustDomain: 'a.test', kind: 'entry', id: 'e1' },
    { trustDomain: 'a.test', kind: 'agent', id: agent('a.test', 'n1').spiffeId },
  ]
  t.ok(await until(() => heard[0]!.events.length >= 3 && heard[1]!.events.length >= 3), 'events arrive')
  t.strictSame(heard[0]!.events, expected, 'a hears its own events and those of b, once each, in order')
  t.strictSame(heard[1]!.events, expected, 'and so does b; messages that are no event are dropped')

  await other!.createTrustDomain(trustDomain('o.test'), rootCa('o.test'))
  t.ok(await until(() => heard[2]!.events.length === 1))
  t.strictSame(
    heard[2]!.events,
    [{ trustDomain: 'o.test', kind: 'trust-domain' }],
    'a prefix is its own world',
  )
  t.equal(heard[0]!.events.length, 3, 'which the others do not hear')
})

t.test('watch: one subscriber connection, made on the first watch and closed by close()', async (t) => {
  const subscribers = async () => {
    const list = String(await raw.call('CLIENT', 'LIST'))
    return list.split('\n').filter((line) => / sub=[1-9]/.test(line)).length
  }
  const before = await subscribers()
  const store = new RedisStore(server.url, `watch-conn-${++n}:`)
  t.teardown(() => store.close())
  await store.migrate()
  t.equal(await subscribers(), before, 'none before the first watch')
  const stops = [store.watch(() => {}), store.watch(() => {})]
  await store.ping()
  t.equal(await subscribers(), before + 1, 'one for any number of watchers')
  for (const stop of stops) stop()
  await store.close()
  let now = await subscribers()
  for (let i = 0; i < 100 && now !== before; i++) {
    await new Promise((r) => setTimeout(r, 10))
    now = await subscribers()
  }
  t.equal(now, before, 'none after close')
})

/** Writes until a watcher hears one of the writes: events sent while a subscriber reconnects are lost. */
async function heardAfterWrites(store: RedisStore, events: ChangeEvent[]): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    await store.createEntry(entry('a.test', `probe-${i}`)).catch(() => {})
    if (await until(() => events.some((e) => e.kind === 'entry'), 100)) return true
  }
  return false
}

t.test('watch: the subscription survives a restart of Redis', async (t) => {
  const own = await startRedis(t)
  const store = new RedisStore(own.url)
  t.teardown(() => store.close())
  await store.migrate()
  await store.createTrustDomain(trustDomain('a.test'), rootCa('a.test'))
  const { events } = collect(store)
  await store.ping()
  own.kill9()
  await own.restart()
  t.ok(await heardAfterWrites(store, events), 'events arrive again after the reconnect')
})

t.test('watch: a first subscription that failed is made once Redis is back', async (t) => {
  const own = await startRedis(t)
  const setup = new RedisStore(own.url)
  await setup.migrate()
  await setup.createTrustDomain(trustDomain('a.test'), rootCa('a.test'))
  await setup.close()
  await own.stop()
  // One retry: SUBSCRIBE fails fast while Redis is down, instead of waiting in the offline queue.
  const store = new RedisStore(new Redis(own.url, { maxRetriesPerRequest: 1 }))
  t.teardown(() => store.close())
  const { events } = collect(store)
  await t.rejects(store.ping(), 'the store fails while Redis is down')
  await own.restart()
  t.ok(await heardAfterWrites(store, events), 'events arrive once Redis is back')
})
