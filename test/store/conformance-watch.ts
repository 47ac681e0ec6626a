// Conformance of Store.watch; part of runStoreConformance (conformance.ts).
import type { Test } from 'tap'
import type { ChangeEvent, Store } from '../../services/store/store.ts'
import type { Openers } from './conformance-agents.ts'
import { agent, apiToken, audit, entry, joinToken, jwtKey, rootCa, settings, trustDomain } from './records.ts'

/** Polls until `done` holds or `ms` passed; returns whether it held. Events arrive asynchronously. */
export async function until(done: () => boolean, ms = 5_000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!done()) {
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, 5))
  }
  return true
}

export function collect(store: Store): { events: ChangeEvent[]; stop: () => void } {
  const events: ChangeEvent[] = []
  const stop = store.watch((event) => {
    events.push(event)
  })
  return { events, stop }
}

export function runWatchConformance(t: Test, { open }: Openers): void {
  t.test('watch: every mutation publishes one event, after its write', async (t) => {
    const store = await open(t)
    const { events, stop } = collect(store)
    t.teardown(stop)

    const td = 'a.test'
    const e1 = entry(td, 'e1')
    const n1 = agent(td, 'n1')
    const renewed = { serial: '0b', svidExpiresAt: 9_000_000, lastSeenAt: 2_000 }
    const ignore = (p: Promise<unknown>) => p.catch(() => undefined)

    await store.createTrustDomain(trustDomain(td), rootCa(td))
    await ignore(store.createTrustDomain(trustDomain(td), rootCa(td, 'dup')))
    await store.updateTrustDomainSettings(td, { ...settings, x509DefaultTtl: 60 })
    await store.updateTrustDomainSettings('nope.test', settings)
    await store.addRootCa(rootCa(td, 'root-2'))
    await store.publishJwtKey(jwtKey(td, 'k1', 5))
    await store.pruneJwtKeys(td, 1)
    await store.pruneJwtKeys(td, 10)
    await store.createEntry(e1)
    await ignore(store.createEntry(e1))
    await store.updateEntry(td, 'e1', { x509Ttl: 60 }, 2_000)
    await store.updateEntry(td, 'missing', { x509Ttl: 60 }, 2_000)
    await store.deleteEntry(td, 'e1')
    await store.deleteEntry(td, 'e1')
    await store.attestAgent(n1)
    await store.attestAgent(n1)
    await store.renewAgentSvid(td, n1.spiffeId, n1.serial, renewed)
    await store.renewAgentSvid(td, n1.spiffeId, n1.serial, renewed)
    await store.touchAgent(td, n1.spiffeId, 3_000)
    await store.banAgent(td, n1.spiffeId)
    await store.attestAgent(n1)
    await store.evictAgent(td, n1.spiffeId)
    await store.evictAgent(td, n1.spiffeId)
    await store.banAgent(td, n1.spiffeId)
    await store.claimOnce(td, 'k', 9_000, 1_000)
    await store.createJoinToken(joinToken(td, 'h', 9_000))
    await store.consumeJoinToken(td, 'h', 1)
    await store.appendAudit(audit(td, 1))
    await store.recordIssuances([
      { trustDomain: td, kind: 'x509', serial: '1', spiffeId: e1.spiffeId, issuedAt: 1, expiresAt: 2 },
    ])
    await store.createApiToken(apiToken('t1', 'hash-1'))
    await store.setMetaIfAbsent('k', 'v')
    await store.deleteTrustDomain(td)
    await store.deleteTrustDomain(td)
    // The last event: once it is in, everything before it is too (events arrive in write order).
    await store.createTrustDomain(trustDomain('z.test'), rootCa('z.test'))

    const expected: ChangeEvent[] = [
      { trustDomain: td, kind: 'trust-domain' },
      { trustDomain: td, kind: 'trust-domain' },
      { trustDomain: td, kind: 'bundle' },
      { trustDomain: td, kind: 'bundle' },
      { trustDomain: td, kind: 'bundle' },
      { trustDomain: td, kind: 'entry', id: 'e1' },
      { trustDomain: td, kind: 'entry', id: 'e1' },
      { trustDomain: td, kind: 'entry', id: 'e1' },
      { trustDomain: td, kind: 'agent', id: n1.spiffeId },
      { trustDomain: td, kind: 'agent', id: n1.spiffeId },
      { trustDomain: td, kind: 'agent', id: n1.spiffeId },
      { trustDomain: td, kind: 'agent', id: n1.spiffeId },
      { trustDomain: td, kind: 'trust-domain' },
      { trustDomain: 'z.test', kind: 'trust-domain' },
    ]
    t.ok(await until(() => events.at(-1)?.trustDomain === 'z.test'), 'the events arrive')
    t.strictSame(events, expected, 'one event per change, in order; none for failed or other writes')
  })

  t.test('watch: a listener sees the write its event is about', async (t) => {
    const store = await open(t)
    const reads: Promise<unknown>[] = []
    const stop = store.watch((e) => {
      if (e.kind === 'entry') reads.push(store.getEntry(e.trustDomain, e.id!))
    })
    t.teardown(stop)
    await store.createTrustDomain(trustDomain('a.test'), rootCa('a.test'))
    await store.createEntry(entry('a.test', 'e1'))
    t.ok(await until(() => reads.length === 1), 'the event arrives')
    t.strictSame(await reads[0], entry('a.test', 'e1'), 'and the entry is there to read')
  })

  t.test('watch: failing listeners break neither the store nor other listeners', async (t) => {
    const store = await open(t)
    const warnings: Error[] = []
    const onWarning = (w: Error) => {
      if (w.name === 'SigilStoreWarning') warnings.push(w)
    }
    process.on('warning', onWarning)
    t.teardown(() => {
      process.off('warning', onWarning)
    })
    const stops = [
      store.watch(() => {
        throw new Error('listener bug')
      }),
      store.watch((async () => {
        throw new Error('async listener bug')
      }) as () => void),
    ]
    const { events, stop } = collect(store)
    t.teardown(() => {
      for (const s of [...stops, stop]) s()
    })
    await store.createTrustDomain(trustDomain('a.test'), rootCa('a.test'))
    await store.createEntry(entry('a.test', 'e1'))
    t.ok(await until(() => events.length === 2), 'the other listener hears every event')
    t.ok(await store.getEntry('a.test', 'e1'), 'the writes succeeded')
    t.ok(await until(() => warnings.length === 4), 'each failure is reported as a process warning')
    t.match(warnings[0]?.message, /listener bug/)
  })

  t.test('watch: unsubscribe stops the events', async (t) => {
    const store = await open(t)
    const first = collect(store)
    const second = collect(store)
    const twice: ChangeEvent[] = []
    const push = (e: ChangeEvent) => {
      twice.push(e)
    }
    const stopTwiceA = store.watch(push)
    const stopTwiceB = store.watch(push)
    t.teardown(() => {
      for (const stop of [first.stop, second.stop, stopTwiceA, stopTwiceB]) stop()
    })

    await store.createTrustDomain(trustDomain('a.test'), rootCa('a.test'))
    t.ok(await until(() => first.events.length === 1 && second.events.length === 1 && twice.length === 2))
    t.equal(twice.length, 2, 'a function watched twice hears each event twice')

    first.stop()
    first.stop()
    stopTwiceA()
    await store.createEntry(entry('a.test', 'e1'))
    t.ok(await until(() => second.events.length === 2), 'a remaining listener hears the next event')
    t.equal(first.events.length, 1, 'an unsubscribed one does not')
    t.equal(twice.length, 3, 'each unsubscribe ends its own subscription only')

    second.stop()
    stopTwiceB()
    const third = collect(store)
    t.teardown(third.stop)
    await store.deleteEntry('a.test', 'e1')
    t.ok(await until(() => third.events.length === 1))
    t.strictSame(
      [first.events.length, second.events.length, twice.length],
      [1, 2, 3],
      'with every listener gone, nothing more is heard',
    )
  })
}
