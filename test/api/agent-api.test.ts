// The agent API's refusals: bad attestation input, used and expired join tokens, banned agents, no
// client certificate, and entries not parented to the asking agent.

import t, { type Test } from 'tap'
import { createNodeAttestorRegistry } from '../../services/attestation/node/registry.ts'
import { buildTestApp } from '../helpers/app.ts'
import { makeCsr } from '../helpers/csr.ts'

async function setup(t: Test) {
  const registry = createNodeAttestorRegistry()
  const h = await buildTestApp(t, { nodeAttestors: (name) => registry.get(name) })
  await h.call('POST', '/v1/trust-domains', { name: 'example.org' })
  const td = await h.services.trustDomains.get('example.org')
  return { h, td }
}

t.test('attestation refusals', async (t) => {
  const { h, td } = await setup(t)
  const csr = (await makeCsr()).der.toString('base64')
  const attest = (body: Record<string, unknown>) =>
    h.call('POST', '/v1/agent/attest', { trustDomain: 'example.org', csr, ...body }, null)

  t.equal((await attest({ attestor: 'telepathy', evidence: {} })).json.error.code, 'ATTESTOR_UNKNOWN')
  t.equal(
    (await attest({ attestor: 'join_token', evidence: 'garbage' })).json.error.code,
    'ATTESTATION_EVIDENCE_INVALID',
  )
  t.equal(
    (await attest({ attestor: 'join_token', evidence: { token: 'sjt_nope' } })).json.error.code,
    'JOIN_TOKEN_NOT_FOUND',
  )
  t.equal(
    (await attest({ attestor: 'aws_iid', evidence: {} })).statusCode >= 400,
    true,
    'an attestor the domain did not configure',
  )
  t.equal(
    (
      await h.call(
        'POST',
        '/v1/agent/attest',
        { trustDomain: 'nope.org', csr, attestor: 'join_token', evidence: { token: 'x' } },
        null,
      )
    ).json.error.code,
    'TRUST_DOMAIN_NOT_FOUND',
  )
  t.equal(
    (await attest({ attestor: 'join_token', evidence: { token: 'x' }, csr: 'not base64!' })).json.error.code,
    'CSR_MALFORMED',
  )
  t.equal((await attest({ session: 'forged', answer: 'x' })).json.error.code, 'ATTESTATION_FAILED')

  const { token } = await h.services.joinTokens.create(td, {
    spiffeId: 'spiffe://example.org/sigil/agent/node1',
    ttl: 60,
  })
  const ok = await attest({ attestor: 'join_token', evidence: { token } })
  t.equal(ok.statusCode, 200, ok.body)
  t.equal(ok.json.spiffeId, 'spiffe://example.org/sigil/agent/node1')
  t.equal(ok.json.certChain.length, 2)
  t.notMatch(
    JSON.stringify(await h.call('GET', '/v1/trust-domains/example.org/audit')),
    token,
    'the token is not in the audit log',
  )
  const again = await attest({ attestor: 'join_token', evidence: { token } })
  t.equal(again.json.error.code, 'JOIN_TOKEN_NOT_FOUND', 'a join token works once')

  // A banned agent cannot come back, even with a fresh token for the same ID.
  await h.call(
    'POST',
    `/v1/trust-domains/example.org/agents/${encodeURIComponent('spiffe://example.org/sigil/agent/node1')}/ban`,
  )
  const fresh = await h.services.joinTokens.create(td, {
    spiffeId: 'spiffe://example.org/sigil/agent/node1',
    ttl: 60,
  })
  t.equal(
    (await attest({ attestor: 'join_token', evidence: { token: fresh.token } })).json.error.code,
    'AGENT_BANNED',
  )
  // Evicted, it may attest again.
  t.equal(
    (
      await h.call(
        'DELETE',
        `/v1/trust-domains/example.org/agents/${encodeURIComponent('spiffe://example.org/sigil/agent/node1')}`,
      )
    ).statusCode,
    204,
  )
  const after = await h.services.joinTokens.create(td, {
    spiffeId: 'spiffe://example.org/sigil/agent/node1',
    ttl: 60,
  })
  t.equal((await attest({ attestor: 'join_token', evidence: { token: after.token } })).statusCode, 200)
})

t.test('an expired join token is refused', async (t) => {
  const { h, td } = await setup(t)
  const { token } = await h.services.joinTokens.create(td, { ttl: 1 })
  await new Promise((r) => setTimeout(r, 1100))
  const res = await h.call(
    'POST',
    '/v1/agent/attest',
    {
      trustDomain: 'example.org',
      csr: (await makeCsr()).der.toString('base64'),
      attestor: 'join_token',
      evidence: { token },
    },
    null,
  )
  t.equal(res.json.error.code, 'JOIN_TOKEN_EXPIRED')
})

t.test('agent routes need the agent SVID as a client certificate', async (t) => {
  const { h } = await setup(t)
  for (const [method, url, body] of [
    ['POST', '/v1/agent/renew', { csr: 'AA==' }],
    ['POST', '/v1/agent/svids/x509', { requests: [{ entryId: 'x', csr: 'AA==' }] }],
    ['POST', '/v1/agent/svids/jwt', { entryId: 'x', audience: ['a'] }],
    ['GET', '/v1/agent/sync', undefined],
  ] as const) {
    const res = await h.call(method, url, body, null)
    t.equal(res.statusCode, 401, `${method} ${url}`)
    t.equal(res.json.error.code, 'UNAUTHENTICATED')
  }
})

t.test('an agent gets SVIDs only for entries parented to it or to its node selectors', async (t) => {
  const { h, td } = await setup(t)
  const { token } = await h.services.joinTokens.create(td, {
    spiffeId: 'spiffe://example.org/sigil/agent/node1',
  })
  await h.call(
    'POST',
    '/v1/agent/attest',
    {
      trustDomain: 'example.org',
      csr: (await makeCsr()).der.toString('base64'),
      attestor: 'join_token',
      evidence: { token },
    },
    null,
  )
  const record = (await h.store.getAgent('example.org', 'spiffe://example.org/sigil/agent/node1'))!
  const mine = await h.call('POST', '/v1/trust-domains/example.org/entries', {
    spiffeId: 'spiffe://example.org/mine',
    parentId: record.spiffeId,
    selectors: ['unix:uid:1'],
  })
  const theirs = await h.call('POST', '/v1/trust-domains/example.org/entries', {
    spiffeId: 'spiffe://example.org/theirs',
    parentId: 'spiffe://example.org/sigil/agent/node2',
    selectors: ['unix:uid:1'],
  })
  // A node alias: an entry under the server whose selectors match this node's (join_token:token:...).
  const alias = await h.call('POST', '/v1/trust-domains/example.org/entries', {
    spiffeId: 'spiffe://example.org/nodes/joined',
    parentId: 'spiffe://example.org/sigil/server',
    selectors: record.selectors.map((s) => `${s.type}:${s.value}`),
  })
  const viaAlias = await h.call('POST', '/v1/trust-domains/example.org/entries', {
    spiffeId: 'spiffe://example.org/via-alias',
    parentId: 'spiffe://example.org/nodes/joined',
    selectors: ['unix:uid:2'],
  })
  t.equal(alias.statusCode, 201, alias.body)
  const authorized = await h.services.agents.authorizedEntries(td, record)
  t.same(authorized.map((e) => e.spiffeId).sort(), [
    'spiffe://example.org/mine',
    'spiffe://example.org/via-alias',
  ])
  const principal = { trustDomain: 'example.org', spiffeId: record.spiffeId, serial: record.serial, record }
  const csr = (await makeCsr()).der
  const results = await h.services.agents.issueForAgent(td, principal, [
    { entryId: mine.json.id, csrDer: csr },
    { entryId: theirs.json.id, csrDer: csr },
    { entryId: viaAlias.json.id, csrDer: csr },
  ])
  t.same(
    results.map((r) => r.ok),
    [true, false, true],
  )
  t.equal((results[1] as { code: string }).code, 'FORBIDDEN')
  await t.rejects(
    h.services.agents.issueJwtForAgent(td, principal, { entryId: theirs.json.id, audience: ['a'] }),
    { code: 'FORBIDDEN' },
  )
})
