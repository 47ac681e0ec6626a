// The federation refresher's schedule, with a manual clock and a fetcher seam (the fetch itself is
// tested over real sockets in test/api/federation.test.ts): refresh at the bundle's hint (clamped), back
// off after failures, follow another replica's refresh, forget deleted federations.

import t, { type Test } from 'tap'
import { ManualClock } from '../../services/clock.ts'
import { FederationService } from '../../services/federation/federation-service.ts'
import type { FetchBundleRequest } from '../../services/federation/fetch-bundle.ts'
import { FederationRefresher } from '../../services/federation/refresher.ts'
import { SqliteStore } from '../../services/store/sqlite.ts'
import { makeCert } from '../attestation/helpers/pki.ts'
import { rootCa, trustDomain } from '../store/records.ts'

const root = await makeCert({ subject: 'CN=partner root', ca: true, uris: ['spiffe://partner.example'] })
const bundle = (sequence: number, hint?: number) =>
  JSON.stringify({
    keys: [{ use: 'x509-svid', x5c: [root.der.toString('base64')] }],
    spiffe_sequence: sequence,
    ...(hint === undefined ? {} : { spiffe_refresh_hint: hint }),
  })

async function setup(t: Test) {
  const store = new SqliteStore(':memory:')
  t.teardown(() => store.close())
  await store.migrate()
  await store.createTrustDomain(trustDomain('a.test'), rootCa('a.test'))
  const clock = new ManualClock(1_000_000_000_000)
  const calls: number[] = []
  let answer: () => string = () => bundle(1, 60)
  const federation = new FederationService(store, clock, {
    refreshHintSeconds: 300,
    fetch: async (_req: FetchBundleRequest) => {
      calls.push(clock.now())
      return answer()
    },
  })
  const refresher = new FederationRefresher({ store, federation, clock, random: () => 1, rescanMs: 0 })
  t.teardown(() => refresher.close())
  const td = (await store.getTrustDomain('a.test'))!
  const settle = async () => {
    await refresher.tick()
    // Refreshes run in the background of a tick.
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
  }
  return {
    store,
    clock,
    calls,
    federation,
    td,
    settle,
    setAnswer: (fn: () => string) => {
      answer = fn
    },
  }
}

t.test('refreshes at the hint, clamped to 5 s - 1 h', async (t) => {
  const s = await setup(t)
  await s.federation.create(s.td, {
    foreignTrustDomain: 'partner.example',
    bundleEndpointUrl: 'https://partner.example/bundle',
  })
  t.equal(s.calls.length, 1, 'creation fetches once')
  await s.settle()
  t.equal(s.calls.length, 1, 'not again right away')
  s.clock.advance(59_000)
  await s.settle()
  t.equal(s.calls.length, 1, 'not before the 60 s hint')
  s.clock.advance(1_000)
  await s.settle()
  t.equal(s.calls.length, 2, 'at the hint')

  s.setAnswer(() => bundle(2, 1))
  s.clock.advance(60_000)
  await s.settle()
  t.equal(s.calls.length, 3)
  t.equal(
    (await s.store.getFederation('a.test', 'partner.example'))?.refreshHintSeconds,
    5,
    'a 1 s hint counts as 5 s',
  )
  s.clock.advance(4_000)
  await s.settle()
  t.equal(s.calls.length, 3)
  s.clock.advance(1_000)
  await s.settle()
  t.equal(s.calls.length, 4)

  s.setAnswer(() => bundle(3, 86_400))
  s.clock.advance(5_000)
  await s.settle()
  t.equal(
    (await s.store.getFederation('a.test', 'partner.example'))?.refreshHintSeconds,
    3600,
    'a day counts as 1 h',
  )
})

t.test('backs off after failures, and resumes the hint after a success', async (t) => {
  const s = await setup(t)
  await s.federation.create(s.td, {
    foreignTrustDomain: 'partner.example',
    bundleEndpointUrl: 'https://partner.example/bundle',
  })
  s.setAnswer(() => '<html>down</html>')
  s.clock.advance(60_000)
  await s.settle()
  t.equal(s.calls.length, 2, 'the refresh at the hint fails')
  const waits: number[] = []
  for (let i = 0; i < 4; i++) {
    const before = s.calls.length
    let waited = 0
    while (s.calls.length === before && waited < 10 * 60_000) {
      s.clock.advance(1_000)
      waited += 1_000
      await s.settle()
    }
    waits.push(waited)
  }
  t.strictSame(waits, [5_000, 10_000, 20_000, 40_000], 'the retries back off: 5 s, doubling')
  const f = await s.store.getFederation('a.test', 'partner.example')
  t.match(f?.lastError, /not JSON/)
  t.equal(f?.sequence, 1, 'the good bundle stays')

  s.setAnswer(() => bundle(4, 60))
  s.clock.advance(80_000)
  await s.settle()
  t.equal((await s.store.getFederation('a.test', 'partner.example'))?.sequence, 4, 'recovered')
  const n = s.calls.length
  s.clock.advance(59_000)
  await s.settle()
  t.equal(s.calls.length, n, 'and back on the hint')
})

t.test("another replica's refresh postpones this one's; a deleted federation is forgotten", async (t) => {
  const s = await setup(t)
  await s.federation.create(s.td, {
    foreignTrustDomain: 'partner.example',
    bundleEndpointUrl: 'https://partner.example/bundle',
  })
  await s.settle()
  s.clock.advance(50_000)
  // As another replica would: a refresh recorded in the store.
  await s.store.putFederationBundle('a.test', 'partner.example', {
    bundle: bundle(1, 60),
    sequence: 1,
    refreshHintSeconds: 60,
    refreshedAt: s.clock.now(),
  })
  s.clock.advance(10_000)
  await s.settle()
  t.equal(s.calls.length, 1, 'not due: the store says it was refreshed 10 s ago')
  s.clock.advance(50_000)
  await s.settle()
  t.equal(s.calls.length, 2, 'due 60 s after the other refresh')

  await s.federation.delete(s.td, 'partner.example')
  s.clock.advance(120_000)
  await s.settle()
  t.equal(s.calls.length, 2, 'a deleted federation is not fetched')
})
