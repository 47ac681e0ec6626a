// Conformance of agents and claims; part of runStoreConformance (conformance.ts).
import type { Test } from 'tap'
import { type Store, StoreMissingTrustDomainError } from '../../services/store/store.ts'
import { agent, rootCa, trustDomain } from './records.ts'

export interface Openers {
  open: (t: Test) => Promise<Store>
  /** A store with trust domains a.test and b.test. */
  withDomains: (t: Test) => Promise<Store>
}

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

export function runAgentConformance(t: Test, { withDomains }: Openers): void {
  t.test('agents: attestation outcomes', async (t) => {
    const store = await withDomains(t)
    const once = agent('a.test', 'once')
    t.equal(await store.attestAgent(once), 'created', 'a new agent is created')
    t.strictSame(await store.getAgent('a.test', once.spiffeId), once, 'get returns what was stored')
    t.equal(
      await store.attestAgent({ ...once, serial: 'ff', attestedAt: 2_000 }),
      'exists',
      'an agent that may not re-attest cannot attest again',
    )
    t.strictSame(await store.getAgent('a.test', once.spiffeId), once, 'and its record is unchanged')

    const again = agent('a.test', 'again', { canReattest: true })
    t.equal(await store.attestAgent(again), 'created')
    const next = {
      ...again,
      serial: 'bb01',
      selectors: [{ type: 'aws_iid', value: 'region:eu-west-1' }],
      attestedAt: 3_000,
      lastSeenAt: 3_000,
    }
    t.equal(await store.attestAgent(next), 'reattested', 'an agent that may re-attest does')
    t.strictSame(await store.getAgent('a.test', again.spiffeId), next, 'and its record is replaced')

    const flip = agent('a.test', 'flip', { canReattest: true })
    await store.attestAgent(flip)
    t.equal(
      await store.attestAgent({ ...flip, canReattest: false, serial: 'cc' }),
      'reattested',
      'the stored record decides whether an agent may re-attest',
    )
    t.equal(
      await store.attestAgent({ ...flip, canReattest: true }),
      'exists',
      'so the new record decides next',
    )
    t.equal((await store.getAgent('a.test', flip.spiffeId))?.serial, 'cc')

    t.equal(await store.banAgent('a.test', again.spiffeId), true, 'ban')
    const banned = { ...next, banned: true }
    t.strictSame(await store.getAgent('a.test', again.spiffeId), banned, 'a banned agent keeps its record')
    t.equal(
      await store.attestAgent({ ...next, serial: 'dd', attestedAt: 4_000 }),
      'banned',
      'a banned agent cannot attest again, even when it may re-attest',
    )
    t.strictSame(await store.getAgent('a.test', again.spiffeId), banned, 'nor change its record')
    t.equal(await store.banAgent('a.test', again.spiffeId), true, 'banning twice is still true')
    t.equal(await store.banAgent('a.test', once.spiffeId), true)
    t.equal(await store.attestAgent(once), 'banned', "'banned' wins over 'exists'")

    const unknown = 'spiffe://a.test/sigil/agent/join_token/unknown'
    t.equal(await store.banAgent('a.test', unknown), false, 'ban of an unknown agent')
    t.equal(await store.evictAgent('a.test', unknown), false, 'evict of an unknown agent')
    t.equal(await store.getAgent('a.test', unknown), undefined, 'neither creates one')

    t.equal(await store.evictAgent('a.test', again.spiffeId), true, 'evict')
    t.equal(await store.getAgent('a.test', again.spiffeId), undefined, 'an evicted agent is gone')
    t.equal(await store.evictAgent('a.test', again.spiffeId), false, 'evict again')
    t.equal(await store.attestAgent(again), 'created', 'and may attest again, as a new agent')
    t.strictSame(await store.getAgent('a.test', again.spiffeId), again, 'not banned any more')

    await rejectsMissing(
      t,
      store.attestAgent(agent('nope.test', 'n')),
      'nope.test',
      'attest in a missing domain',
    )
    t.strictSame(await store.listAgents('nope.test'), [], 'and nothing was stored')
  })

  t.test('agents: listing, touch and tenant isolation', async (t) => {
    const store = await withDomains(t)
    const a2 = agent('a.test', 'n2', { attestedAt: 500 })
    const a1 = agent('a.test', 'n1')
    // The same SPIFFE ID under b.test: records are keyed by (trust domain, SPIFFE ID).
    const b1 = { ...a1, trustDomain: 'b.test', serial: '0b', canReattest: true }
    for (const a of [a2, a1, b1]) t.equal(await store.attestAgent(a), 'created')
    t.strictSame(await store.listAgents('a.test'), [a1, a2], 'listed by SPIFFE ID')
    t.strictSame(await store.listAgents('b.test'), [b1], 'per domain')
    t.strictSame(await store.listAgents('c.test'), [], 'a missing domain has none')
    t.strictSame(await store.getAgent('b.test', a1.spiffeId), b1, 'same SPIFFE ID, own record')
    t.equal(await store.getAgent('b.test', a2.spiffeId), undefined, 'get by another domain')

    await store.touchAgent('a.test', a1.spiffeId, 7_000)
    t.strictSame(
      await store.getAgent('a.test', a1.spiffeId),
      { ...a1, lastSeenAt: 7_000 },
      'touch sets lastSeenAt',
    )
    t.strictSame(await store.getAgent('b.test', a1.spiffeId), b1, 'in its own domain only')
    await store.touchAgent('b.test', a2.spiffeId, 7_000)
    await store.touchAgent('a.test', 'spiffe://a.test/sigil/agent/join_token/none', 7_000)
    t.equal(await store.getAgent('b.test', a2.spiffeId), undefined, 'touch never creates an agent')
    t.equal((await store.listAgents('a.test')).length, 2)

    t.equal(await store.banAgent('b.test', a2.spiffeId), false, 'ban by another domain')
    t.equal(await store.evictAgent('b.test', a2.spiffeId), false, 'evict by another domain')
    t.equal(
      await store.renewAgentSvid('b.test', a2.spiffeId, a2.serial, {
        serial: 'x',
        svidExpiresAt: 1,
        lastSeenAt: 1,
      }),
      false,
      'renew by another domain',
    )
    t.strictSame(await store.getAgent('a.test', a2.spiffeId), a2, 'a.test/n2 is untouched')

    t.equal(await store.banAgent('b.test', a1.spiffeId), true)
    t.equal((await store.getAgent('a.test', a1.spiffeId))?.banned, false, 'a ban in b.test leaves a.test')
    t.equal(await store.evictAgent('b.test', a1.spiffeId), true)
    t.ok(await store.getAgent('a.test', a1.spiffeId), 'and so does an evict')
    t.strictSame(await store.listAgents('b.test'), [])
  })

  t.test('agents: SVID renewal is compare-and-set', async (t) => {
    const store = await withDomains(t)
    const a = agent('a.test', 'n1')
    await store.attestAgent(a)
    const next = { serial: '0b01', svidExpiresAt: 6_000_000, lastSeenAt: 2_000 }
    t.equal(
      await store.renewAgentSvid('a.test', a.spiffeId, a.serial, next),
      true,
      'renew with the current serial',
    )
    const renewed = { ...a, ...next }
    t.strictSame(await store.getAgent('a.test', a.spiffeId), renewed, 'serial, expiry and lastSeenAt change')
    t.equal(
      await store.renewAgentSvid('a.test', a.spiffeId, a.serial, { ...next, serial: '0b02' }),
      false,
      'a stale previous serial',
    )
    t.strictSame(await store.getAgent('a.test', a.spiffeId), renewed, 'leaves the record unchanged')

    const ghost = 'spiffe://a.test/sigil/agent/join_token/ghost'
    t.equal(await store.renewAgentSvid('a.test', ghost, 'aa', next), false, 'an unknown agent')
    t.equal(await store.getAgent('a.test', ghost), undefined, 'is not created')

    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        store.renewAgentSvid('a.test', a.spiffeId, next.serial, { ...next, serial: `0c${i}` }),
      ),
    )
    const winners = results.flatMap((won, i) => (won ? [i] : []))
    t.equal(winners.length, 1, 'exactly one of 20 concurrent renewals of the same serial wins')
    t.equal(
      (await store.getAgent('a.test', a.spiffeId))?.serial,
      `0c${winners[0]}`,
      'and its serial is stored',
    )

    const current = (await store.getAgent('a.test', a.spiffeId))!
    await store.banAgent('a.test', a.spiffeId)
    t.equal(
      await store.renewAgentSvid('a.test', a.spiffeId, current.serial, { ...next, serial: '0d' }),
      false,
      'a banned agent cannot renew',
    )
    t.strictSame(await store.getAgent('a.test', a.spiffeId), { ...current, banned: true })
  })

  t.test('claims: single use until expiry, per domain', async (t) => {
    const store = await withDomains(t)
    t.equal(await store.claimOnce('a.test', 'k', 2_000, 1_000), true, 'the first claim')
    t.equal(await store.claimOnce('a.test', 'k', 9_000, 1_000), false, 'the second')
    t.equal(await store.claimOnce('a.test', 'k', 9_000, 1_999), false, 'until expiresAt')
    t.equal(await store.claimOnce('b.test', 'k', 2_000, 1_000), true, 'another domain has its own keys')
    t.equal(await store.claimOnce('a.test', 'other', 2_000, 1_000), true, 'another key')
    t.equal(await store.claimOnce('a.test', 'k', 3_000, 2_000), true, 'an expired claim can be claimed again')
    t.equal(
      await store.claimOnce('a.test', 'k', 9_000, 2_500),
      false,
      'and is then held until its new expiry',
    )
    t.equal(await store.claimOnce('a.test', 'k', 9_000, 3_000), true)

    const results = await Promise.all(
      Array.from({ length: 50 }, () => store.claimOnce('a.test', 'race', 10_000, 1_000)),
    )
    t.equal(results.filter(Boolean).length, 1, 'exactly one of 50 concurrent claims wins')
    const expired = await Promise.all(
      Array.from({ length: 50 }, () => store.claimOnce('a.test', 'race', 20_000, 10_000)),
    )
    t.equal(expired.filter(Boolean).length, 1, 'and exactly one of 50 once it expired')

    await rejectsMissing(t, store.claimOnce('nope.test', 'k', 2_000, 1_000), 'nope.test', 'a missing domain')
  })

  t.test('trust domain deletion removes its agents and claims', async (t) => {
    const store = await withDomains(t)
    for (const td of ['a.test', 'b.test']) {
      await store.attestAgent(agent(td, 'n1'))
      await store.attestAgent(agent(td, 'n2'))
      await store.banAgent(td, agent(td, 'n2').spiffeId)
      await store.claimOnce(td, 'k', 9_000, 1_000)
    }
    const b = await store.listAgents('b.test')
    t.equal(await store.deleteTrustDomain('a.test'), true)
    t.strictSame(await store.listAgents('a.test'), [], 'agents are gone')
    t.equal(await store.getAgent('a.test', agent('a.test', 'n1').spiffeId), undefined)

    await store.createTrustDomain(trustDomain('a.test'), rootCa('a.test'))
    t.strictSame(await store.listAgents('a.test'), [], 'a domain created again starts without agents')
    t.equal(await store.attestAgent(agent('a.test', 'n2')), 'created', 'a once banned agent is new there')
    t.equal(await store.claimOnce('a.test', 'k', 9_000, 1_000), true, 'and unexpired claims are gone')
    t.strictSame(await store.listAgents('b.test'), b, 'b.test keeps its agents')
    t.equal(await store.claimOnce('b.test', 'k', 9_000, 1_000), false, 'and its claims')
  })
}
