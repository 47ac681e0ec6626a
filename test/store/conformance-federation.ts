// Conformance of federations; part of runStoreConformance (conformance.ts).
import type { Test } from 'tap'
import { StoreConflictError, StoreMissingTrustDomainError } from '../../services/store/store.ts'
import type { Openers } from './conformance-agents.ts'
import { collect, until } from './conformance-watch.ts'
import { bundleText, federation, rootCa, trustDomain } from './records.ts'

const update = (sequence: number, marker = 'k', refreshedAt = 5_000) => ({
  bundle: bundleText(sequence, marker),
  sequence,
  refreshHintSeconds: 60,
  refreshedAt,
})

export function runFederationConformance(t: Test, { withDomains }: Openers): void {
  t.test('federations: create, get, list, delete, per trust domain', async (t) => {
    const store = await withDomains(t)
    const web = federation('a.test', 'partner.org')
    const spiffe = federation('a.test', 'corp.example', {
      profile: 'https_spiffe',
      endpointSpiffeId: 'spiffe://corp.example/spire/server',
      bundle: bundleText(7, 'bootstrap'),
      sequence: 7,
    })
    delete spiffe.caBundlePem
    await store.createFederation(web)
    await store.createFederation(spiffe)
    t.strictSame(await store.getFederation('a.test', 'partner.org'), web, 'every field as written')
    t.strictSame(await store.getFederation('a.test', 'corp.example'), spiffe, 'absent fields stay absent')
    t.strictSame(
      (await store.listFederations('a.test')).map((f) => f.foreignTrustDomain),
      ['corp.example', 'partner.org'],
      'listed by foreign trust domain',
    )
    t.strictSame(await store.listFederations('b.test'), [], 'b.test has none')
    t.equal(await store.getFederation('b.test', 'partner.org'), undefined, 'nor sees a.test’s')

    const err = await store.createFederation({ ...web, bundleEndpointUrl: 'https://other' }).catch((e) => e)
    t.ok(err instanceof StoreConflictError, 'a second federation with the same foreign domain conflicts')
    t.match(err, { code: 'STORE_CONFLICT', resource: 'federation' })
    t.equal((await store.getFederation('a.test', 'partner.org'))?.bundleEndpointUrl, web.bundleEndpointUrl)
    await store.createFederation(federation('b.test', 'partner.org'))
    t.equal((await store.listFederations('b.test')).length, 1, 'the same foreign domain in another tenant')

    const missing = await store.createFederation(federation('nope.test', 'x.org')).catch((e) => e)
    t.ok(missing instanceof StoreMissingTrustDomainError, 'a missing trust domain is refused')
    t.match(missing, { trustDomain: 'nope.test' })

    t.equal(await store.deleteFederation('a.test', 'partner.org'), true)
    t.equal(await store.deleteFederation('a.test', 'partner.org'), false, 'deleted once')
    t.equal(await store.getFederation('a.test', 'partner.org'), undefined)
    t.ok(await store.getFederation('b.test', 'partner.org'), 'b.test keeps its own')
  })

  t.test('federations: a bundle is stored unless older; errors are recorded beside it', async (t) => {
    const store = await withDomains(t)
    await store.createFederation(federation('a.test', 'partner.org', { createdAt: 2_000 }))
    t.equal(await store.putFederationBundle('a.test', 'partner.org', update(3)), 'stored', 'the first bundle')
    let f = await store.getFederation('a.test', 'partner.org')
    t.match(f, { bundle: bundleText(3), sequence: 3, refreshHintSeconds: 60, lastRefreshAt: 5_000 })
    t.equal(f?.createdAt, 2_000, 'createdAt is kept')

    t.equal(await store.recordFederationError('a.test', 'partner.org', 'endpoint served HTML', 6_000), true)
    f = await store.getFederation('a.test', 'partner.org')
    t.match(
      f,
      { lastError: 'endpoint served HTML', lastErrorAt: 6_000, bundle: bundleText(3) },
      'bundle stays',
    )

    t.equal(
      await store.putFederationBundle('a.test', 'partner.org', update(2, 'old', 7_000)),
      'older',
      'a lower sequence is refused',
    )
    f = await store.getFederation('a.test', 'partner.org')
    t.match(f, {
      bundle: bundleText(3),
      sequence: 3,
      lastRefreshAt: 5_000,
      lastError: 'endpoint served HTML',
    })

    t.equal(
      await store.putFederationBundle('a.test', 'partner.org', update(3, 'k', 8_000)),
      'unchanged',
      'the same bundle again',
    )
    f = await store.getFederation('a.test', 'partner.org')
    t.equal(f?.lastRefreshAt, 8_000, 'refreshed')
    t.notOk('lastError' in (f ?? {}), 'a good refresh clears the error')
    t.notOk('lastErrorAt' in (f ?? {}))

    t.equal(
      await store.putFederationBundle('a.test', 'partner.org', update(3, 'rekeyed', 9_000)),
      'stored',
      'another bundle with the same sequence replaces it',
    )
    t.equal(await store.putFederationBundle('a.test', 'partner.org', update(10, 'n', 9_500)), 'stored')
    t.match(await store.getFederation('a.test', 'partner.org'), { sequence: 10, bundle: bundleText(10, 'n') })

    t.equal(await store.putFederationBundle('a.test', 'nobody.org', update(1)), 'not_found')
    t.equal(await store.putFederationBundle('b.test', 'partner.org', update(1)), 'not_found', 'per tenant')
    t.equal(await store.recordFederationError('b.test', 'partner.org', 'x', 1), false)
    await t.rejects(
      store.putFederationBundle('a.test', 'partner.org', { ...update(1), sequence: -1 }),
      TypeError,
      'a negative sequence is misuse',
    )
    await t.rejects(
      store.putFederationBundle('a.test', 'partner.org', { ...update(1), refreshHintSeconds: 0 }),
      TypeError,
      'so is a zero hint',
    )
  })

  t.test('federations: a bootstrap bundle counts; a lower sequence than it is refused', async (t) => {
    const store = await withDomains(t)
    await store.createFederation(
      federation('a.test', 'corp.example', { bundle: bundleText(5, 'boot'), sequence: 5 }),
    )
    t.equal(await store.putFederationBundle('a.test', 'corp.example', update(4)), 'older')
    t.equal(await store.putFederationBundle('a.test', 'corp.example', update(6)), 'stored')
  })

  t.test('federations: of concurrent writers, the highest sequence stays', async (t) => {
    const store = await withDomains(t)
    await store.createFederation(federation('a.test', 'partner.org'))
    const sequences = Array.from({ length: 20 }, (_, i) => (i * 7) % 20)
    await Promise.all(sequences.map((s) => store.putFederationBundle('a.test', 'partner.org', update(s))))
    t.equal((await store.getFederation('a.test', 'partner.org'))?.sequence, 19)
  })

  t.test('federations: changes publish a bundle event of the local trust domain', async (t) => {
    const store = await withDomains(t)
    const { events, stop } = collect(store)
    t.teardown(stop)
    await store.createFederation(federation('a.test', 'partner.org'))
    await store.putFederationBundle('a.test', 'partner.org', update(1))
    await store.putFederationBundle('a.test', 'partner.org', update(1)) // unchanged: no event
    await store.putFederationBundle('a.test', 'partner.org', update(0)) // older: no event
    await store.recordFederationError('a.test', 'partner.org', 'down', 1) // no event
    await store.deleteFederation('a.test', 'partner.org')
    await store.deleteFederation('a.test', 'partner.org') // nothing deleted: no event
    t.ok(await until(() => events.length >= 3), 'events arrive')
    await new Promise((r) => setTimeout(r, 50))
    const ev = { trustDomain: 'a.test', kind: 'bundle', id: 'partner.org' }
    t.strictSame(events, [ev, ev, ev])
  })

  t.test('federations: deleting a trust domain deletes its federations', async (t) => {
    const store = await withDomains(t)
    await store.createFederation(federation('a.test', 'partner.org', { bundle: bundleText(1), sequence: 1 }))
    await store.createFederation(federation('b.test', 'partner.org'))
    t.equal(await store.deleteTrustDomain('a.test'), true)
    t.strictSame(await store.listFederations('a.test'), [])
    await store.createTrustDomain(trustDomain('a.test'), rootCa('a.test', 'root-a2'))
    t.strictSame(await store.listFederations('a.test'), [], 'a new domain of the same name starts empty')
    t.equal((await store.listFederations('b.test')).length, 1, 'the other tenant keeps its own')
  })
}
