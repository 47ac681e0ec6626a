// Conformance of policies and flow reports; part of runStoreConformance (conformance.ts).
import type { Test } from 'tap'
import type { FlowRecord } from '../../services/flows/flow.ts'
import { POLICY_HISTORY_LIMIT, StoreMissingTrustDomainError } from '../../services/store/store.ts'
import type { Openers } from './conformance-agents.ts'
import { collect, until } from './conformance-watch.ts'
import { flow, policy, rootCa, trustDomain } from './records.ts'

const retention = { maxAgeMs: 1_000_000, maxCount: 1_000 }
const keys = (flows: FlowRecord[]) => flows.map((f) => `${f.id}/${f.side}`)

async function rejectsMissing(t: Test, promise: Promise<unknown>, td: string, message: string) {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  t.ok(err instanceof StoreMissingTrustDomainError, `${message}: rejects with StoreMissingTrustDomainError`, {
    found: err,
  })
  t.match(err, { code: 'STORE_MISSING_TRUST_DOMAIN', trustDomain: td }, `${message}: error fields`)
}

export function runPolicyConformance(t: Test, { withDomains }: Openers): void {
  t.test('policies: versions, compare-and-set, history', async (t) => {
    const store = await withDomains(t)
    t.equal(await store.getPolicy('a.test'), undefined, 'no policy yet')
    t.strictSame(await store.listPolicyVersions('a.test', 10), [], 'no history yet')

    const v1 = policy('a.test', 1)
    t.equal(await store.putPolicy(v1, 0), true, 'the first version is stored against expected 0')
    t.strictSame(await store.getPolicy('a.test'), v1, 'get returns every field as written')
    t.equal(await store.putPolicy(policy('a.test', 1, { text: 'other' }), 0), false, 'expected 0 is stale')
    t.strictSame(await store.getPolicy('a.test'), v1, 'the losing write changed nothing')

    const v2 = policy('a.test', 2, { mode: 'explicit', text: 'mode: explicit\n', updatedBy: 'x' })
    t.equal(await store.putPolicy(v2, 1), true)
    t.strictSame(await store.getPolicy('a.test'), v2, 'the newest version is current')
    t.strictSame(await store.listPolicyVersions('a.test', 10), [v2, v1], 'history, newest first')
    t.strictSame(await store.listPolicyVersions('a.test', 1), [v2], 'limited')
    t.strictSame(await store.listPolicyVersions('a.test', 0), [], 'a zero limit lists nothing')

    await t.rejects(store.putPolicy(policy('a.test', 5), 2), TypeError, 'a version that skips is misuse')
    await t.rejects(store.putPolicy(policy('a.test', 2), -1), TypeError, 'a negative expected version too')
    t.strictSame(await store.getPolicy('a.test'), v2, 'misuse writes nothing')

    t.equal(await store.getPolicy('b.test'), undefined, 'b.test has its own (no) policy')
    t.equal(await store.putPolicy(policy('b.test', 1, { text: 'b' }), 0), true, 'versions count per domain')
    t.strictSame(await store.getPolicy('a.test'), v2, 'a.test is untouched by b.test')
    t.equal((await store.getPolicy('b.test'))?.text, 'b')

    await rejectsMissing(t, store.putPolicy(policy('nope.test', 1), 0), 'nope.test', 'putPolicy')
    t.equal(await store.getPolicy('nope.test'), undefined)
  })

  t.test('policies: of 20 concurrent writers with the same expected version, exactly one wins', async (t) => {
    const store = await withDomains(t)
    await store.putPolicy(policy('a.test', 1), 0)
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.putPolicy(policy('a.test', 2, { text: `writer ${i}` }), 1)),
    )
    const winners = results.flatMap((won, i) => (won ? [i] : []))
    t.equal(winners.length, 1, 'exactly one write is stored')
    t.equal((await store.getPolicy('a.test'))?.text, `writer ${winners[0]}`, "and it is the winner's")
    t.equal((await store.listPolicyVersions('a.test', 100)).length, 2, 'no other version slipped in')
  })

  t.test(`policies: the newest ${POLICY_HISTORY_LIMIT} versions are kept`, async (t) => {
    const store = await withDomains(t)
    const total = POLICY_HISTORY_LIMIT + 5
    for (let v = 1; v <= total; v++) t.equal(await store.putPolicy(policy('a.test', v), v - 1), true)
    const history = await store.listPolicyVersions('a.test', 1_000)
    t.equal(history.length, POLICY_HISTORY_LIMIT, `${POLICY_HISTORY_LIMIT} versions`)
    t.equal(history[0]!.version, total, 'the newest')
    t.equal(history.at(-1)!.version, total - POLICY_HISTORY_LIMIT + 1, 'down to the oldest kept')
    t.equal(await store.putPolicy(policy('a.test', total + 1), total), true, 'versions keep counting')
  })

  t.test('policies: a stored version publishes one change, a refused one none', async (t) => {
    const store = await withDomains(t)
    const { events, stop } = collect(store)
    t.teardown(stop)
    await store.ping()
    await store.putPolicy(policy('a.test', 1), 0)
    await store.putPolicy(policy('a.test', 1), 0)
    await store.putPolicy(policy('a.test', 2), 1)
    t.ok(await until(() => events.length >= 2), 'events arrive')
    await new Promise((r) => setTimeout(r, 50))
    t.strictSame(events, [
      { trustDomain: 'a.test', kind: 'policy' },
      { trustDomain: 'a.test', kind: 'policy' },
    ])
  })

  t.test('flows: append, list newest first, filters', async (t) => {
    const store = await withDomains(t)
    const now = 10_000_000
    const f1 = flow('a.test', 'f1', now - 5_000)
    const f1in = flow('a.test', 'f1', now - 5_000, {
      side: 'ingress',
      source: { spiffeId: 'spiffe://a.test/web' },
      destination: { spiffeId: 'spiffe://a.test/db', port: 5432, agent: 'spiffe://a.test/sigil/agent/x/n2' },
    })
    const f2 = flow('a.test', 'f2', now - 4_000, {
      source: { path: '/usr/bin/curl', pid: 7, agent: 'spiffe://a.test/sigil/agent/x/n1' },
      destination: { fqdn: 'api.example.com', port: 443 },
      verdict: 'unidentified',
      reason: 'source has no SPIFFE ID; baseline lets it through',
    })
    delete f2.rule
    const f3 = flow('a.test', 'f3', now - 3_000, {
      verdict: 'denied',
      rule: 'no-debug-shells',
      destination: { spiffeId: 'spiffe://a.test/api', port: 8080 },
    })
    // Same start: ties are broken by id, then side, descending, in every store.
    const t1 = flow('a.test', 'tie-a', now - 2_000)
    const t2 = flow('a.test', 'tie-b', now - 2_000)
    const t2in = flow('a.test', 'tie-b', now - 2_000, { side: 'ingress' })
    await store.appendFlows('a.test', [f1, f2, f1in], retention, now)
    await store.appendFlows('a.test', [t2in, f3, t1, t2], retention, now)
    await store.appendFlows('b.test', [flow('b.test', 'fb', now - 1_000)], retention, now)

    const all = await store.listFlows('a.test', { limit: 100 })
    t.strictSame(
      keys(all),
      ['tie-b/ingress', 'tie-b/egress', 'tie-a/egress', 'f3/egress', 'f2/egress', 'f1/ingress', 'f1/egress'],
      'newest first; ties by id then side, descending',
    )
    t.strictSame(all.at(-1), f1, 'every field survives')
    t.strictSame(all.at(-2), f1in)
    t.strictSame(all[4], f2, 'absent optional fields stay absent')
    t.strictSame(keys(await store.listFlows('a.test', { limit: 2 })), ['tie-b/ingress', 'tie-b/egress'])

    const list = async (q: Partial<Parameters<typeof store.listFlows>[1]>) =>
      keys(await store.listFlows('a.test', { limit: 100, ...q }))
    t.strictSame(await list({ verdict: 'denied' }), ['f3/egress'], 'by verdict')
    t.strictSame(await list({ verdict: 'unidentified' }), ['f2/egress'])
    t.strictSame(await list({ side: 'ingress' }), ['tie-b/ingress', 'f1/ingress'], 'by side')
    t.strictSame(
      await list({ spiffeId: 'spiffe://a.test/api' }),
      ['f3/egress'],
      'by SPIFFE ID of the destination',
    )
    t.strictSame(
      (await list({ spiffeId: 'spiffe://a.test/web' })).length,
      6,
      'and of the source (f2 has no identity)',
    )
    t.strictSame(await list({ since: now - 3_000 }), [
      'tie-b/ingress',
      'tie-b/egress',
      'tie-a/egress',
      'f3/egress',
    ])
    t.strictSame(
      await list({ since: now - 4_000, until: now - 3_000 }),
      ['f3/egress', 'f2/egress'],
      'inclusive',
    )
    t.strictSame(await list({ verdict: 'allowed', side: 'egress', limit: 2 }), [
      'tie-b/egress',
      'tie-a/egress',
    ])
    t.strictSame(await list({ spiffeId: 'spiffe://b.test/web' }), [], 'another domain never shows')
    t.strictSame(keys(await store.listFlows('b.test', { limit: 10 })), ['fb/egress'], 'b.test has its own')
    t.strictSame(await store.listFlows('a.test', { limit: 0 }), [], 'a zero limit lists nothing')

    const replaced = { ...f3, durationMs: 999, bytesIn: 1 }
    await store.appendFlows('a.test', [replaced], retention, now)
    const again = await store.listFlows('a.test', { limit: 100, verdict: 'denied' })
    t.strictSame(again, [replaced], 'a record sent again for the same id and side replaces the first')
    t.equal((await store.listFlows('a.test', { limit: 100 })).length, 7, 'and adds nothing')

    await rejectsMissing(t, store.appendFlows('nope.test', [f1], retention, now), 'nope.test', 'appendFlows')
    t.strictSame(await store.listFlows('nope.test', { limit: 10 }), [])
  })

  t.test('flows: retention by age and by count, per trust domain', async (t) => {
    const store = await withDomains(t)
    const now = 50_000_000
    const day = 86_400_000
    const keep = { maxAgeMs: 7 * day, maxCount: 5 }
    await store.appendFlows(
      'a.test',
      [
        flow('a.test', 'old', now - 8 * day),
        flow('a.test', 'edge', now - 7 * day),
        flow('a.test', 'new', now),
      ],
      keep,
      now,
    )
    t.strictSame(
      keys(await store.listFlows('a.test', { limit: 100 })),
      ['new/egress', 'edge/egress'],
      'older than now - maxAge is pruned (exactly maxAge old is kept)',
    )
    await store.appendFlows(
      'b.test',
      [flow('b.test', 'old-b', now - 8 * day)],
      { ...keep, maxAgeMs: 9 * day },
      now,
    )
    await store.appendFlows('a.test', [flow('a.test', 'x', now)], keep, now)
    t.equal(
      (await store.listFlows('b.test', { limit: 100 })).length,
      1,
      "a.test's pruning leaves b.test alone",
    )

    const batch = Array.from({ length: 8 }, (_, i) => flow('a.test', `c${i}`, now + i))
    batch.push(flow('a.test', 'c7', now + 7, { side: 'ingress' }))
    await store.appendFlows('a.test', batch, keep, now)
    t.strictSame(
      keys(await store.listFlows('a.test', { limit: 100 })),
      ['c7/ingress', 'c7/egress', 'c6/egress', 'c5/egress', 'c4/egress'],
      'beyond maxCount, the oldest go first',
    )
    await store.appendFlows('a.test', [flow('a.test', 'late', now - day)], keep, now)
    t.strictSame(
      keys(await store.listFlows('a.test', { limit: 100 })),
      ['c7/ingress', 'c7/egress', 'c6/egress', 'c5/egress', 'c4/egress'],
      'a late record older than all kept ones is pruned at once',
    )
    await store.appendFlows('a.test', [], { maxAgeMs: day, maxCount: 5 }, now + 2 * day)
    t.strictSame(await store.listFlows('a.test', { limit: 100 }), [], 'an empty append still prunes')
    await t.rejects(store.appendFlows('a.test', [], { maxAgeMs: 0, maxCount: 5 }, now), TypeError)
    await t.rejects(store.appendFlows('a.test', [], { maxAgeMs: 1, maxCount: 0 }, now), TypeError)
  })

  t.test('deleting a trust domain deletes its policies and flows', async (t) => {
    const store = await withDomains(t)
    for (const td of ['a.test', 'b.test']) {
      await store.putPolicy(policy(td, 1), 0)
      await store.putPolicy(policy(td, 2), 1)
      await store.appendFlows(td, [flow(td, 'f1', 5_000), flow(td, 'f2', 6_000)], retention, 6_000)
    }
    t.equal(await store.deleteTrustDomain('a.test'), true)
    t.equal(await store.getPolicy('a.test'), undefined, 'the policy is gone')
    t.strictSame(await store.listPolicyVersions('a.test', 10), [], 'with its history')
    t.strictSame(await store.listFlows('a.test', { limit: 10 }), [], 'flows are gone')
    t.equal((await store.getPolicy('b.test'))?.version, 2, 'b.test keeps its policy')
    t.equal((await store.listFlows('b.test', { limit: 10 })).length, 2, 'and its flows')

    await store.createTrustDomain(trustDomain('a.test', 9_000), rootCa('a.test', 'root-new', 9_000))
    t.equal(await store.getPolicy('a.test'), undefined, 'a domain created again has no policy')
    t.equal(await store.putPolicy(policy('a.test', 1), 0), true, 'and starts at version 1')
    t.strictSame(await store.listFlows('a.test', { limit: 10 }), [], 'nor flows')
  })
}
