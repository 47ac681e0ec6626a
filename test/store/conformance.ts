// The behaviour every Store implementation must have. Run by sqlite.test.ts and redis.test.ts.
import type { Test } from 'tap'
import {
  type AuditRecord,
  type EntryRecord,
  type Store,
  StoreConflictError,
  StoreMissingTrustDomainError,
} from '../../services/store/store.ts'
import { runAgentConformance } from './conformance-agents.ts'
import { runFederationConformance } from './conformance-federation.ts'
import { runPolicyConformance } from './conformance-policy.ts'
import { runTunnelConformance } from './conformance-tunnels.ts'
import { runWatchConformance } from './conformance-watch.ts'
import { apiToken, audit, entry, joinToken, jwtKey, rootCa, settings, trustDomain } from './records.ts'

type ErrorClass = abstract new (...args: never[]) => Error

async function rejectsWith(
  t: Test,
  promise: Promise<unknown>,
  cls: ErrorClass,
  fields: Record<string, unknown>,
  message: string,
): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  t.ok(err instanceof cls, `${message}: rejects with ${cls.name}`, { found: err })
  if (err instanceof cls) t.match(err, fields, `${message}: error fields`)
}

const conflict = (t: Test, p: Promise<unknown>, resource: string, message: string) =>
  rejectsWith(t, p, StoreConflictError, { code: 'STORE_CONFLICT', resource }, message)

const missing = (t: Test, p: Promise<unknown>, td: string, message: string) =>
  rejectsWith(
    t,
    p,
    StoreMissingTrustDomainError,
    { code: 'STORE_MISSING_TRUST_DOMAIN', trustDomain: td },
    message,
  )

const ids = (entries: EntryRecord[]) => entries.map((e) => e.id)

/** Every audit record of a domain, newest first, read in pages. */
async function allAudit(store: Store, td: string, pageSize: number): Promise<AuditRecord[]> {
  const out: AuditRecord[] = []
  let before: number | undefined
  for (let page = 0; page < 1000; page++) {
    const query: { limit: number; before?: number } = { limit: pageSize }
    if (before !== undefined) query.before = before
    const rows = await store.listAudit(td, query)
    out.push(...rows)
    if (rows.length < pageSize) break
    before = rows.at(-1)!.seq
  }
  return out
}

export function runStoreConformance(t: Test, makeStore: () => Promise<Store>): void {
  const open = async (t: Test): Promise<Store> => {
    const store = await makeStore()
    t.teardown(() => store.close())
    await store.migrate()
    return store
  }

  /** A store with trust domains A and B. */
  const withDomains = async (t: Test) => {
    const store = await open(t)
    await store.createTrustDomain(trustDomain('a.test'), rootCa('a.test'))
    await store.createTrustDomain(trustDomain('b.test', 2_000), rootCa('b.test', 'root-b', 2_000))
    return store
  }

  t.test('migrate is idempotent, ping answers, close is final', async (t) => {
    const store = await makeStore()
    t.teardown(() => store.close())
    await store.migrate()
    await store.migrate()
    await store.ping()
    t.ok(['sqlite', 'redis'].includes(store.kind), 'kind')
    t.same(await store.listTrustDomains(), [], 'a new store is empty')
    await store.close()
    await store.close()
    await t.rejects(store.ping(), 'ping fails once closed')
  })

  t.test('trust domains: create, get, list', async (t) => {
    const store = await open(t)
    t.equal(await store.getTrustDomain('a.test'), undefined, 'missing domain')
    await store.createTrustDomain(trustDomain('b.test', 5), rootCa('b.test'))
    await store.createTrustDomain(trustDomain('a.test', 7), rootCa('a.test'))
    t.strictSame(
      await store.getTrustDomain('a.test'),
      trustDomain('a.test', 7),
      'get returns what was stored',
    )
    t.strictSame(
      await store.listTrustDomains(),
      [trustDomain('a.test', 7), trustDomain('b.test', 5)],
      'list is sorted by name',
    )
    t.strictSame(await store.listRootCas('a.test'), [rootCa('a.test')], 'the first root CA is stored with it')
    t.equal(await store.getBundleSequence('a.test'), 1, 'a new domain has bundle sequence 1')

    await conflict(
      t,
      store.createTrustDomain(trustDomain('a.test', 9), rootCa('a.test', 'other')),
      'trust_domain',
      'duplicate name',
    )
    t.strictSame(await store.getTrustDomain('a.test'), trustDomain('a.test', 7), 'the original is unchanged')
    t.strictSame(
      await store.listRootCas('a.test'),
      [rootCa('a.test')],
      'no second root from the failed create',
    )

    await rejectsWith(
      t,
      store.createTrustDomain(trustDomain('c.test'), rootCa('a.test', 'stray')),
      TypeError,
      {},
      'a root CA of another domain',
    )
    t.equal(await store.getTrustDomain('c.test'), undefined, 'nothing created for the mismatch')
    t.strictSame(await store.listRootCas('a.test'), [rootCa('a.test')], 'and nothing added to a.test')
  })

  t.test('trust domains: update settings', async (t) => {
    const store = await withDomains(t)
    const next = { ...settings, x509DefaultTtl: 60, policyMode: 'explicit' as const }
    const updated = await store.updateTrustDomainSettings('a.test', next)
    t.strictSame(updated, { name: 'a.test', createdAt: 1_000, settings: next }, 'returns the updated record')
    t.strictSame(await store.getTrustDomain('a.test'), updated, 'get sees the update')
    t.strictSame(await store.getTrustDomain('b.test'), trustDomain('b.test', 2_000), 'b.test is untouched')
    t.equal(await store.updateTrustDomainSettings('nope.test', next), undefined, 'missing domain')
    t.equal(await store.getTrustDomain('nope.test'), undefined, 'update does not create')
    t.equal(await store.getBundleSequence('a.test'), 1, 'settings are not part of the bundle')
  })

  t.test('trust domains: delete cascades to that domain only', async (t) => {
    const store = await withDomains(t)
    const now = Date.now()
    for (const td of ['a.test', 'b.test']) {
      await store.addRootCa(rootCa(td, 'root-2', 3_000))
      await store.publishJwtKey(jwtKey(td, 'kid-1', now + 60_000))
      await store.createEntry(entry(td, 'e1'))
      await store.createEntry(entry(td, 'e2', { parentId: `spiffe://${td}/agent/node-2` }))
      await store.createJoinToken(joinToken(td, 'hash-1', now + 60_000))
      await store.appendAudit(audit(td, 1))
      await store.recordIssuances([
        {
          trustDomain: td,
          kind: 'x509',
          serial: '01',
          spiffeId: `spiffe://${td}/w`,
          issuedAt: now,
          expiresAt: now + 1,
        },
      ])
    }
    await store.appendAudit(audit('', 2))
    await store.createApiToken(apiToken('api-1', 'api-hash-1'))
    await store.setMetaIfAbsent('installation', 'x')

    const snapshot = async (td: string) => ({
      td: await store.getTrustDomain(td),
      roots: await store.listRootCas(td),
      keys: await store.listJwtKeys(td),
      seq: await store.getBundleSequence(td),
      entries: await store.listEntries(td),
      tokens: await store.listJoinTokens(td),
      audit: await store.listAudit(td, { limit: 100 }),
      issuances: await store.countIssuances(td, 0),
    })
    const b = await snapshot('b.test')

    t.equal(await store.deleteTrustDomain('a.test'), true, 'delete returns true')
    t.equal(await store.deleteTrustDomain('a.test'), false, 'a second delete returns false')
    t.strictSame(
      await snapshot('a.test'),
      { td: undefined, roots: [], keys: [], seq: 0, entries: [], tokens: [], audit: [], issuances: 0 },
      'everything of a.test is gone',
    )
    t.equal(await store.getEntry('a.test', 'e1'), undefined, 'entries are gone')
    t.strictSame(
      await store.listEntries('a.test', { parentId: 'spiffe://a.test/agent/node-1' }),
      [],
      'and their indexes',
    )
    t.strictSame(
      await store.consumeJoinToken('a.test', 'hash-1', now),
      { ok: false, reason: 'not_found' },
      'tokens too',
    )
    t.strictSame(await snapshot('b.test'), b, 'b.test is untouched')
    t.strictSame(ids(await store.listEntries('b.test', { selector: { type: 'k8s', value: 'sa:e1' } })), [
      'e1',
    ])
    t.equal((await store.listAudit('', { limit: 10 })).length, 1, 'installation-wide audit is kept')
    t.ok(await store.findApiTokenByHash('api-hash-1'), 'API tokens are kept')
    t.equal(await store.getMeta('installation'), 'x', 'metadata is kept')
    t.same(
      (await store.listTrustDomains()).map((td) => td.name),
      ['b.test'],
      'only b.test is listed',
    )

    await store.createTrustDomain(trustDomain('a.test', 9_000), rootCa('a.test', 'root-new', 9_000))
    t.strictSame(
      await snapshot('a.test'),
      {
        td: trustDomain('a.test', 9_000),
        roots: [rootCa('a.test', 'root-new', 9_000)],
        keys: [],
        seq: 1,
        entries: [],
        tokens: [],
        audit: [],
        issuances: 0,
      },
      'a domain created again under the same name starts empty',
    )
    await store.createEntry(entry('a.test', 'e1'))
    await store.createEntry(entry('a.test', 'e2', { parentId: 'spiffe://a.test/agent/node-2' }))
    t.strictSame(ids(await store.listEntries('a.test')), ['e1', 'e2'], 'old identities are free again')
    t.strictSame(
      ids(await store.listEntries('a.test', { parentId: 'spiffe://a.test/agent/node-1' })),
      ['e1'],
      'and the indexes hold only new entries',
    )
  })

  t.test('bundle sequence moves with the bundle and nothing else', async (t) => {
    const store = await withDomains(t)
    const now = 1_000_000
    t.equal(await store.addRootCa(rootCa('a.test', 'root-2', 2_000)), 2, 'addRootCa returns the new sequence')
    t.equal(await store.publishJwtKey(jwtKey('a.test', 'k-old', now - 1, 1_500)), 3, 'publishJwtKey too')
    t.equal(await store.publishJwtKey(jwtKey('a.test', 'k-edge', now, 1_600)), 4)
    t.equal(await store.publishJwtKey(jwtKey('a.test', 'k-new', now + 1, 1_400)), 5)
    t.equal(await store.getBundleSequence('a.test'), 5)
    t.equal(await store.getBundleSequence('b.test'), 1, 'per domain')

    t.strictSame(
      await store.listRootCas('a.test'),
      [rootCa('a.test'), rootCa('a.test', 'root-2', 2_000)],
      'root CAs by createdAt',
    )
    t.strictSame(
      await store.listJwtKeys('a.test'),
      [
        jwtKey('a.test', 'k-new', now + 1, 1_400),
        jwtKey('a.test', 'k-old', now - 1, 1_500),
        jwtKey('a.test', 'k-edge', now, 1_600),
      ],
      'JWT keys by createdAt, JWK intact',
    )

    await conflict(t, store.addRootCa(rootCa('a.test', 'root-2', 5_000)), 'root_ca', 'duplicate root CA id')
    await conflict(t, store.publishJwtKey(jwtKey('a.test', 'k-new', now + 9)), 'jwt_key', 'duplicate kid')
    await store.createEntry(entry('a.test', 'e1'))
    await store.updateEntry('a.test', 'e1', { x509Ttl: 1 }, 2_000)
    await store.deleteEntry('a.test', 'e1')
    await store.createJoinToken(joinToken('a.test', 'h', now))
    await store.consumeJoinToken('a.test', 'h', now)
    await store.appendAudit(audit('a.test', 1))
    await store.updateTrustDomainSettings('a.test', { ...settings, jwtMaxTtl: 1 })
    await store.recordIssuances([
      {
        trustDomain: 'a.test',
        kind: 'jwt',
        serial: 's',
        spiffeId: 'spiffe://a.test/x',
        issuedAt: Date.now(),
        expiresAt: 0,
      },
    ])
    t.equal(
      await store.pruneJwtKeys('a.test', now - 2),
      undefined,
      'a prune that removes nothing returns undefined',
    )
    t.equal(await store.getBundleSequence('a.test'), 5, 'none of that moved the sequence')

    t.equal(
      await store.pruneJwtKeys('a.test', now),
      6,
      'prune removes notAfter <= now and moves the sequence',
    )
    t.strictSame(
      (await store.listJwtKeys('a.test')).map((k) => k.kid),
      ['k-new'],
      'only the unexpired key is left',
    )
    t.equal(await store.pruneJwtKeys('a.test', now), undefined, 'pruning again removes nothing')
    t.equal(await store.getBundleSequence('a.test'), 6)
    t.equal(await store.getBundleSequence('b.test'), 1, 'b.test never moved')
    t.strictSame(await store.listJwtKeys('b.test'), [], 'b.test has no keys')

    await missing(t, store.addRootCa(rootCa('nope.test')), 'nope.test', 'addRootCa to a missing domain')
    await missing(
      t,
      store.publishJwtKey(jwtKey('nope.test', 'k', now)),
      'nope.test',
      'publishJwtKey to a missing domain',
    )
    t.equal(await store.getBundleSequence('nope.test'), 0, 'a missing domain has sequence 0')
    t.equal(await store.pruneJwtKeys('nope.test', now), undefined, 'prune of a missing domain')
    t.strictSame(await store.listRootCas('nope.test'), [])
    t.strictSame(await store.listJwtKeys('nope.test'), [])
  })

  t.test('entries: create, get, update, delete', async (t) => {
    const store = await withDomains(t)
    const full = entry('a.test', 'e1', {
      selectors: [
        { type: 'unix', value: 'uid:1000' },
        { type: 'k8s', value: 'ns:prod' },
      ],
      dnsNames: ['a.example.test', 'b.example.test'],
      federatesWith: ['spiffe://partner.test'],
      admin: true,
      downstream: true,
      expiresAt: 9_999_999,
      x509Ttl: 7200,
      jwtTtl: 120,
    })
    await store.createEntry(full)
    t.strictSame(await store.getEntry('a.test', 'e1'), full, 'get returns every field as written')
    const bare = entry('a.test', 'e0', { selectors: [], dnsNames: [], federatesWith: [] })
    await store.createEntry(bare)
    t.strictSame(await store.getEntry('a.test', 'e0'), bare, 'empty lists survive')
    t.strictSame(await store.listEntries('a.test'), [bare, full], 'list, by id')
    t.equal(await store.getEntry('a.test', 'nope'), undefined, 'missing entry')

    const patched = await store.updateEntry(
      'a.test',
      'e1',
      { dnsNames: [], admin: false, expiresAt: 0, x509Ttl: 60, spiffeId: undefined },
      5_000,
    )
    const expected = {
      ...full,
      dnsNames: [],
      admin: false,
      expiresAt: 0,
      x509Ttl: 60,
      updatedAt: 5_000,
      revision: 2,
    }
    t.strictSame(patched, expected, 'update applies the patch, bumps revision, sets updatedAt')
    t.strictSame(await store.getEntry('a.test', 'e1'), expected, 'and it is stored')

    const moved = await store.updateEntry(
      'a.test',
      'e1',
      {
        spiffeId: 'spiffe://a.test/renamed',
        parentId: 'spiffe://a.test/agent/node-9',
        selectors: [{ type: 'docker', value: 'label:x' }],
        jwtTtl: 30,
        downstream: false,
        federatesWith: [],
      },
      6_000,
    )
    t.strictSame(
      moved,
      {
        ...expected,
        spiffeId: 'spiffe://a.test/renamed',
        parentId: 'spiffe://a.test/agent/node-9',
        selectors: [{ type: 'docker', value: 'label:x' }],
        jwtTtl: 30,
        downstream: false,
        federatesWith: [],
        updatedAt: 6_000,
        revision: 3,
      },
      'identity fields can change',
    )
    const touched = await store.updateEntry('a.test', 'e1', {}, 7_000)
    t.equal(touched?.revision, 4, 'an empty patch still bumps the revision')
    t.equal(touched?.updatedAt, 7_000)
    t.equal(touched?.createdAt, full.createdAt, 'createdAt never changes')
    t.equal(
      await store.updateEntry('a.test', 'nope', { x509Ttl: 1 }, 1),
      undefined,
      'update of a missing entry',
    )

    t.equal(await store.deleteEntry('a.test', 'e1'), true, 'delete returns true')
    t.equal(await store.deleteEntry('a.test', 'e1'), false, 'then false')
    t.equal(await store.getEntry('a.test', 'e1'), undefined, 'deleted')
    t.strictSame(ids(await store.listEntries('a.test')), ['e0'])
  })

  t.test('entries: filters', async (t) => {
    const store = await withDomains(t)
    const S1 = 'spiffe://a.test/s1'
    const S2 = 'spiffe://a.test/s2'
    const P1 = 'spiffe://a.test/agent/p1'
    const P2 = 'spiffe://a.test/agent/p2'
    const uid1 = { type: 'unix', value: 'uid:1' }
    const uid2 = { type: 'unix', value: 'uid:2' }
    const ns = { type: 'k8s', value: 'ns:a' }
    await store.createEntry(entry('a.test', 'e1', { spiffeId: S1, parentId: P1, selectors: [uid1, ns] }))
    await store.createEntry(entry('a.test', 'e2', { spiffeId: S2, parentId: P1, selectors: [uid2] }))
    await store.createEntry(entry('a.test', 'e3', { spiffeId: S1, parentId: P2, selectors: [uid1] }))
    await store.createEntry(entry('b.test', 'e4', { spiffeId: S1, parentId: P1, selectors: [uid1] }))
    await store.createEntry(entry('a.test', 'c1', { selectors: [{ type: 'a:b', value: 'c' }] }))
    await store.createEntry(entry('a.test', 'c2', { selectors: [{ type: 'a', value: 'b:c' }] }))

    const list = async (filter: Parameters<Store['listEntries']>[1]) =>
      ids(await store.listEntries('a.test', filter))
    t.strictSame(await list({}), ['c1', 'c2', 'e1', 'e2', 'e3'], 'no filter')
    t.strictSame(await list(undefined), ['c1', 'c2', 'e1', 'e2', 'e3'], 'undefined filter')
    t.strictSame(await list({ spiffeId: S1 }), ['e1', 'e3'], 'by spiffeId')
    t.strictSame(await list({ parentId: P1 }), ['e1', 'e2'], 'by parentId')
    t.strictSame(await list({ selector: uid1 }), ['e1', 'e3'], 'by selector')
    t.strictSame(await list({ spiffeId: S1, parentId: P1 }), ['e1'], 'spiffeId and parentId')
    t.strictSame(await list({ spiffeId: S1, selector: ns }), ['e1'], 'spiffeId and selector')
    t.strictSame(await list({ parentId: P2, selector: uid2 }), [], 'no match')
    t.strictSame(await list({ selector: { type: 'unix', value: 'uid:9' } }), [], 'unknown selector')
    t.strictSame(await list({ spiffeId: 'spiffe://a.test/nope' }), [], 'unknown spiffeId')
    t.strictSame(
      await list({ selector: { type: 'a:b', value: 'c' } }),
      ['c1'],
      'selector type and value are not confused',
    )
    t.strictSame(await list({ selector: { type: 'a', value: 'b:c' } }), ['c2'])
    t.strictSame(ids(await store.listEntries('b.test', { selector: uid1 })), ['e4'], 'per domain')

    await store.updateEntry('a.test', 'e2', { parentId: P2, selectors: [uid1] }, 2_000)
    t.strictSame(await list({ parentId: P1 }), ['e1'], 'filters follow an update')
    t.strictSame(await list({ parentId: P2 }), ['e2', 'e3'])
    t.strictSame(await list({ selector: uid2 }), [], 'the old selector no longer matches')
    t.strictSame(await list({ selector: uid1 }), ['e1', 'e2', 'e3'])
    const S3 = 'spiffe://a.test/s3'
    await store.updateEntry('a.test', 'e3', { spiffeId: S3 }, 2_000)
    t.strictSame(await list({ spiffeId: S1 }), ['e1'])
    t.strictSame(await list({ spiffeId: S3 }), ['e3'])

    await store.deleteEntry('a.test', 'e1')
    t.strictSame(await list({ selector: uid1 }), ['e2', 'e3'], 'filters follow a delete')
    t.strictSame(await list({ selector: ns }), [])
    t.strictSame(await list({ spiffeId: S1 }), [])
    t.strictSame(await list({ spiffeId: S2, parentId: P2 }), ['e2'])
  })

  t.test('entries: uniqueness', async (t) => {
    const store = await withDomains(t)
    const a = { type: 'k8s', value: 'ns:a' }
    const b = { type: 'k8s', value: 'sa:b' }
    const base = entry('a.test', 'e1', { selectors: [a, b] })
    await store.createEntry(base)

    await conflict(
      t,
      store.createEntry(entry('a.test', 'e1', { spiffeId: 'spiffe://a.test/other' })),
      'entry',
      'same id',
    )
    await conflict(
      t,
      store.createEntry({ ...base, id: 'e2', selectors: [b, a] }),
      'entry',
      'same identity, selectors reordered',
    )
    await conflict(
      t,
      store.createEntry({ ...base, id: 'e2', selectors: [a, b, a] }),
      'entry',
      'same identity, a selector repeated',
    )
    await conflict(
      t,
      store.createEntry({ ...base, id: 'e2', x509Ttl: 1, dnsNames: [] }),
      'entry',
      'other fields do not count',
    )
    t.strictSame(ids(await store.listEntries('a.test')), ['e1'], 'no entry was created by the conflicts')

    await store.createEntry({ ...base, id: 'e2', selectors: [a] })
    await store.createEntry({ ...base, id: 'e3', parentId: 'spiffe://a.test/agent/other' })
    await store.createEntry({ ...base, id: 'e4', spiffeId: 'spiffe://a.test/other' })
    await store.createEntry({ ...base, trustDomain: 'b.test' })
    await store.createEntry({ ...base, id: 'e5', selectors: [] })
    await conflict(
      t,
      store.createEntry({ ...base, id: 'e6', selectors: [] }),
      'entry',
      'empty selector lists are equal',
    )
    t.strictSame(
      ids(await store.listEntries('a.test')),
      ['e1', 'e2', 'e3', 'e4', 'e5'],
      'distinct identities',
    )

    const e2 = await store.getEntry('a.test', 'e2')
    await conflict(
      t,
      store.updateEntry('a.test', 'e2', { selectors: [b, a] }, 9_000),
      'entry',
      'an update into a taken identity',
    )
    t.strictSame(await store.getEntry('a.test', 'e2'), e2, 'the failed update changed nothing')
    t.strictSame(
      ids(await store.listEntries('a.test', { selector: b })),
      ['e1', 'e3', 'e4'],
      'nor the indexes',
    )

    const same = await store.updateEntry('a.test', 'e1', { selectors: [b, a, b] }, 9_000)
    t.strictSame(same?.selectors, [b, a, b], 'an update to its own identity is fine; selectors kept as given')
    t.equal(same?.revision, 2)

    await store.deleteEntry('a.test', 'e1')
    await store.createEntry({ ...base, id: 'e7' })
    t.ok(await store.getEntry('a.test', 'e7'), 'a deleted identity can be used again')
    await store.updateEntry('a.test', 'e7', { selectors: [a, { type: 'k8s', value: 'sa:c' }] }, 9_500)
    await store.createEntry({ ...base, id: 'e8' })
    t.ok(await store.getEntry('a.test', 'e8'), 'and so can an identity an update gave up')
  })

  t.test('records of a missing trust domain', async (t) => {
    const store = await withDomains(t)
    const td = 'nope.test'
    await missing(t, store.createEntry(entry(td, 'e1')), td, 'createEntry')
    await missing(t, store.createJoinToken(joinToken(td, 'h', 10)), td, 'createJoinToken')
    await missing(
      t,
      store.recordIssuances([
        {
          trustDomain: td,
          kind: 'x509',
          serial: '1',
          spiffeId: 'spiffe://nope.test/x',
          issuedAt: Date.now(),
          expiresAt: 0,
        },
      ]),
      td,
      'recordIssuances',
    )
    t.equal(await store.getEntry(td, 'e1'), undefined)
    t.strictSame(await store.listEntries(td), [])
    t.strictSame(await store.listEntries(td, { parentId: 'x' }), [])
    t.equal(await store.updateEntry(td, 'e1', { x509Ttl: 1 }, 1), undefined)
    t.equal(await store.deleteEntry(td, 'e1'), false)
    t.strictSame(await store.listJoinTokens(td), [])
    t.strictSame(await store.consumeJoinToken(td, 'h', 1), { ok: false, reason: 'not_found' })
    t.equal(await store.deleteJoinToken(td, 'h'), false)
    t.equal(await store.countIssuances(td, 0), 0)
    t.strictSame(await store.listAudit(td, { limit: 10 }), [])
    t.equal(await store.getTrustDomain(td), undefined, 'the failed writes did not create the domain')
  })

  t.test('tenant isolation: one domain never sees another', async (t) => {
    const store = await withDomains(t)
    const ea = entry('a.test', 'shared', { spiffeId: 'spiffe://a.test/w' })
    const eb = entry('b.test', 'shared', { spiffeId: 'spiffe://b.test/w' })
    await store.createEntry(ea)
    await store.createEntry(eb)
    await store.createEntry(entry('a.test', 'only-a'))
    t.strictSame(await store.getEntry('a.test', 'shared'), ea, 'same id, own record')
    t.strictSame(await store.getEntry('b.test', 'shared'), eb)
    t.equal(await store.getEntry('b.test', 'only-a'), undefined, 'get by another domain')
    t.equal(
      await store.updateEntry('b.test', 'only-a', { x509Ttl: 1 }, 2),
      undefined,
      'update by another domain',
    )
    t.equal(await store.deleteEntry('b.test', 'only-a'), false, 'delete by another domain')
    t.ok(await store.getEntry('a.test', 'only-a'), 'still there')
    t.strictSame(ids(await store.listEntries('b.test')), ['shared'], 'list by another domain')
    t.strictSame(
      ids(await store.listEntries('b.test', { spiffeId: 'spiffe://a.test/w' })),
      [],
      'filter by another domain',
    )

    const updated = await store.updateEntry('a.test', 'shared', { x509Ttl: 5 }, 3)
    t.equal(updated?.x509Ttl, 5)
    t.strictSame(
      await store.getEntry('b.test', 'shared'),
      eb,
      'an update of a.test/shared leaves b.test/shared',
    )
    t.equal(await store.deleteEntry('a.test', 'shared'), true)
    t.strictSame(await store.getEntry('b.test', 'shared'), eb, 'and so does a delete')

    await store.createJoinToken(joinToken('a.test', 'same-hash', 1_000_000))
    await store.createJoinToken(joinToken('b.test', 'same-hash', 1_000_000))
    t.equal((await store.consumeJoinToken('a.test', 'same-hash', 1)).ok, true)
    t.strictSame(
      (await store.listJoinTokens('b.test')).map((x) => x.tokenHash),
      ['same-hash'],
      'b.test token intact',
    )
    t.equal(await store.deleteJoinToken('a.test', 'same-hash'), false, 'delete by the consumed domain')
    t.equal((await store.consumeJoinToken('b.test', 'same-hash', 1)).ok, true, 'b.test can use its own')

    await store.appendAudit(audit('a.test', 1))
    t.strictSame(await store.listAudit('b.test', { limit: 10 }), [], 'audit of another domain')
  })

  t.test('join tokens', async (t) => {
    const store = await withDomains(t)
    const fixed = joinToken('a.test', 'h-fixed', 5_000, 'spiffe://a.test/agent/fixed')
    const open2 = { ...joinToken('a.test', 'h-open', 5_000), createdAt: 900 }
    await store.createJoinToken(fixed)
    await store.createJoinToken(open2)
    await store.createJoinToken(joinToken('a.test', 'h-old', 2_000))
    t.strictSame(
      (await store.listJoinTokens('a.test')).map((x) => x.tokenHash),
      ['h-open', 'h-fixed', 'h-old'],
      'listed by createdAt, then hash',
    )
    await conflict(
      t,
      store.createJoinToken(joinToken('a.test', 'h-fixed', 9_000)),
      'join_token',
      'duplicate hash',
    )

    t.strictSame(
      await store.consumeJoinToken('a.test', 'h-fixed', 4_999),
      { ok: true, token: fixed },
      'consume',
    )
    t.strictSame(
      await store.consumeJoinToken('a.test', 'h-fixed', 4_999),
      { ok: false, reason: 'not_found' },
      'only once',
    )
    const r = await store.consumeJoinToken('a.test', 'h-open', 1)
    t.strictSame(r, { ok: true, token: open2 }, 'a token without a fixed SPIFFE ID')
    t.notOk(r.ok && 'spiffeId' in r.token, 'has no spiffeId property at all')

    t.strictSame(
      await store.consumeJoinToken('a.test', 'h-old', 2_000),
      { ok: false, reason: 'expired' },
      'expired at expiresAt',
    )
    t.strictSame(
      await store.consumeJoinToken('a.test', 'h-old', 2_000),
      { ok: false, reason: 'not_found' },
      'and consumed',
    )
    t.strictSame(
      await store.consumeJoinToken('a.test', 'never', 1),
      { ok: false, reason: 'not_found' },
      'unknown',
    )

    await store.createJoinToken(joinToken('a.test', 'h-del', 9_000))
    t.equal(await store.deleteJoinToken('a.test', 'h-del'), true, 'delete')
    t.equal(await store.deleteJoinToken('a.test', 'h-del'), false, 'delete again')
    t.strictSame(
      await store.consumeJoinToken('a.test', 'h-del', 1),
      { ok: false, reason: 'not_found' },
      'deleted tokens are gone',
    )
    t.strictSame(await store.listJoinTokens('a.test'), [], 'nothing left')
  })

  t.test('join tokens are single use under concurrency', async (t) => {
    const store = await withDomains(t)
    for (const hash of ['race', 'race-expired']) {
      await store.createJoinToken(joinToken('a.test', hash, 10_000))
    }
    const results = await Promise.all(
      Array.from({ length: 50 }, () => store.consumeJoinToken('a.test', 'race', 1)),
    )
    t.equal(results.filter((r) => r.ok).length, 1, 'exactly one of 50 concurrent consumers succeeds')
    t.equal(results.filter((r) => !r.ok && r.reason === 'not_found').length, 49, 'the others find nothing')
    const expired = await Promise.all(
      Array.from({ length: 20 }, () => store.consumeJoinToken('a.test', 'race-expired', 10_000)),
    )
    t.equal(
      expired.filter((r) => !r.ok && r.reason === 'expired').length,
      1,
      'an expired token is reported once',
    )
    t.equal(expired.filter((r) => r.ok).length, 0, 'and never ok')
  })

  t.test('API tokens', async (t) => {
    const store = await open(t)
    await store.createApiToken(apiToken('t2', 'hash-2', 2_000))
    await store.createApiToken(apiToken('t1', 'hash-1', 2_000))
    await store.createApiToken(apiToken('t0', 'hash-0', 3_000))
    t.strictSame(await store.findApiTokenByHash('hash-1'), apiToken('t1', 'hash-1', 2_000), 'find by hash')
    t.equal(await store.findApiTokenByHash('nope'), undefined, 'unknown hash')
    t.strictSame(
      (await store.listApiTokens()).map((x) => x.id),
      ['t1', 't2', 't0'],
      'listed by createdAt, then id',
    )
    await conflict(t, store.createApiToken(apiToken('t1', 'hash-9')), 'api_token', 'duplicate id')
    await conflict(t, store.createApiToken(apiToken('t9', 'hash-1')), 'api_token', 'duplicate hash')
    t.equal(await store.findApiTokenByHash('hash-9'), undefined, 'the failed create stored nothing')
    t.equal((await store.listApiTokens()).length, 3)

    t.equal(await store.deleteApiToken('t1'), true, 'delete')
    t.equal(await store.deleteApiToken('t1'), false, 'delete again')
    t.equal(await store.findApiTokenByHash('hash-1'), undefined, 'a deleted token is not found by hash')
    await store.createApiToken(apiToken('t9', 'hash-1'))
    t.equal((await store.findApiTokenByHash('hash-1'))?.id, 't9', 'its hash can be reused')
  })

  t.test('audit log: ordering and paging', async (t) => {
    const store = await withDomains(t)
    const written: AuditRecord[] = []
    for (let n = 0; n < 25; n++) {
      const td = ['a.test', 'b.test', ''][n % 3]!
      const record = audit(td, n, n % 4 === 0 ? 'CONFLICT' : undefined)
      const seq = await store.appendAudit(record)
      written.push({ ...record, seq })
    }
    const seqs = written.map((r) => r.seq)
    t.ok(
      seqs.every((s, i) => Number.isInteger(s) && (i === 0 || s > seqs[i - 1]!)),
      'seq is strictly increasing across domains',
    )

    for (const td of ['a.test', 'b.test', '']) {
      const mine = written.filter((r) => r.trustDomain === td).reverse()
      t.strictSame(
        await store.listAudit(td, { limit: 100 }),
        mine,
        `${td || "''"}: newest first, exactly its own`,
      )
      t.strictSame(await allAudit(store, td, 3), mine, `${td || "''"}: paging with before + limit`)
    }
    const a = written.filter((r) => r.trustDomain === 'a.test').reverse()
    t.strictSame(await store.listAudit('a.test', { limit: 2 }), a.slice(0, 2), 'limit')
    t.strictSame(
      await store.listAudit('a.test', { limit: 2, before: a[2]!.seq }),
      a.slice(3, 5),
      'before is exclusive',
    )
    t.strictSame(
      await store.listAudit('a.test', { limit: 5, before: a.at(-1)!.seq }),
      [],
      'nothing before the first',
    )
    t.strictSame(await store.listAudit('a.test', { limit: 0 }), [], 'limit 0')
    t.ok(
      written.some((r) => r.code === 'CONFLICT') && written.some((r) => !('code' in r)),
      'code is optional',
    )
  })

  t.test('issuance records', async (t) => {
    const store = await withDomains(t)
    const now = Date.now()
    const rec = (td: string, kind: 'x509' | 'jwt', serial: string, issuedAt: number) => ({
      trustDomain: td,
      kind,
      serial,
      spiffeId: `spiffe://${td}/w`,
      issuedAt,
      expiresAt: issuedAt + 3_600_000,
    })
    await store.recordIssuances([])
    await store.recordIssuances([
      rec('a.test', 'x509', 's1', now - 5_000),
      rec('a.test', 'x509', 's2', now - 3_000),
      rec('a.test', 'jwt', 's1', now - 1_000),
      rec('b.test', 'x509', 's1', now - 2_000),
    ])
    t.equal(await store.countIssuances('a.test', now - 10_000), 3, 'count since')
    t.equal(await store.countIssuances('a.test', now - 3_000), 2, 'since is inclusive')
    t.equal(await store.countIssuances('a.test', now - 2_999), 1)
    t.equal(await store.countIssuances('a.test', now), 0)
    t.equal(await store.countIssuances('b.test', now - 10_000), 1, 'per domain')

    await store.recordIssuances([rec('a.test', 'x509', 's1', now - 5_000)])
    t.equal(await store.countIssuances('a.test', now - 10_000), 3, 'a serial recorded twice counts once')

    await missing(
      t,
      store.recordIssuances([rec('a.test', 'x509', 's9', now), rec('gone.test', 'x509', 's9', now)]),
      'gone.test',
      'a batch naming a missing domain',
    )
    t.equal(await store.countIssuances('a.test', now - 10_000), 3, 'is not recorded at all')

    const batch = Array.from({ length: 200 }, (_, i) =>
      rec('b.test', i % 2 ? 'jwt' : 'x509', `batch-${i}`, now - i),
    )
    await store.recordIssuances(batch)
    t.equal(await store.countIssuances('b.test', now - 10_000), 201, 'a large batch')
    t.equal(await store.countIssuances('b.test', now - 99), 100)
  })

  t.test("issuance records are kept for 7 days of the caller's clock", async (t) => {
    const store = await withDomains(t)
    const day = 86_400_000
    const past = 1_000_000_000_000
    const rec = (serial: string, issuedAt: number) => ({
      trustDomain: 'a.test',
      kind: 'x509' as const,
      serial,
      spiffeId: 'spiffe://a.test/w',
      issuedAt,
      expiresAt: issuedAt + day,
    })
    await store.recordIssuances([rec('old', past), rec('mid', past + 3 * day)])
    t.equal(await store.countIssuances('a.test', 0), 2, 'a clock far behind the wall clock prunes nothing')
    await store.recordIssuances([rec('new', past + 8 * day)])
    t.equal(await store.countIssuances('a.test', 0), 2, 'a newer write prunes what is 7 days older than it')
    t.equal(await store.countIssuances('a.test', past + 3 * day), 2, 'and keeps the rest')
    await store.recordIssuances([rec('late', past + 2 * day)])
    t.equal(await store.countIssuances('a.test', 0), 3, 'a late record is kept while its batch is recent')
  })

  t.test('installation metadata', async (t) => {
    const store = await open(t)
    t.equal(await store.getMeta('k'), undefined, 'missing key')
    t.equal(await store.setMetaIfAbsent('k', 'v1'), true, 'first set wins')
    t.equal(await store.setMetaIfAbsent('k', 'v2'), false, 'second set loses')
    t.equal(await store.getMeta('k'), 'v1', 'value kept')
    const big = 'x'.repeat(100_000)
    await store.setMetaIfAbsent('big', big)
    t.equal(await store.getMeta('big'), big, 'large values')

    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => store.setMetaIfAbsent('race', `v${i}`)),
    )
    const winners = results.flatMap((won, i) => (won ? [i] : []))
    t.equal(winners.length, 1, 'exactly one of 30 concurrent setMetaIfAbsent wins')
    t.equal(await store.getMeta('race'), `v${winners[0]}`, 'and its value is stored')
  })

  runAgentConformance(t, { open, withDomains })
  runWatchConformance(t, { open, withDomains })
  runPolicyConformance(t, { open, withDomains })
  runFederationConformance(t, { open, withDomains })
  runTunnelConformance(t, { open, withDomains })
}
