import { createHash } from 'node:crypto'
import t from 'tap'
import { createAgentNodeAttestor } from '../../agents/attestation/node/registry.ts'
import { createJoinTokenAttestor } from '../../services/attestation/node/join-token.ts'
import { refused } from './helpers/assert.ts'
import { attestationContext } from './helpers/context.ts'

const attestor = createJoinTokenAttestor()

t.test('a join token attests once, as spiffe://TD/sigil/agent/join_token/<sha256 prefix>', async (t) => {
  const { ctx, td, joinTokens } = await attestationContext(t)
  const { token } = await joinTokens.create(td, { ttl: 600 })
  const agent = await createAgentNodeAttestor('join_token', { token })
  t.notMatch(JSON.stringify(agent), token, 'the agent attestor does not expose its token')
  const step = await attestor.attest(await agent.evidence(), ctx)
  const id = createHash('sha256').update(token).digest('hex').slice(0, 32)
  t.same(step, {
    done: true,
    result: {
      agentId: `spiffe://example.org/sigil/agent/join_token/${id}`,
      selectors: [{ type: 'join_token', value: `token:${id}` }],
      canReattest: false,
    },
  })
  await refused(t, attestor.attest({ token }, ctx), 'JOIN_TOKEN_NOT_FOUND', /already used/, { secret: token })
})

t.test('a token that fixes a SPIFFE ID attests as that ID', async (t) => {
  const { ctx, td, joinTokens } = await attestationContext(t)
  const { token } = await joinTokens.create(td, { spiffeId: 'spiffe://example.org/node/db-1' })
  const step = await attestor.attest({ token }, ctx)
  t.equal(step.done && step.result.agentId, 'spiffe://example.org/node/db-1')
})

t.test('an expired token is refused', async (t) => {
  const { ctx, td, joinTokens, clock } = await attestationContext(t)
  const { token } = await joinTokens.create(td, { ttl: 60 })
  clock.advance(61_000)
  await refused(t, attestor.attest({ token }, ctx), 'JOIN_TOKEN_EXPIRED', /sigil token create/, {
    secret: token,
  })
})

t.test('garbage evidence is refused before the token store is touched', async (t) => {
  const { ctx, td, joinTokens } = await attestationContext(t)
  const { token } = await joinTokens.create(td, {})
  const garbage: unknown[] = [
    undefined,
    null,
    'token',
    42,
    [token],
    {},
    { token: 42 },
    { token: '' },
    { token: 'x'.repeat(100_000) },
    { token: 'has space' },
    { token: 'line\nbreak' },
    { token, extra: true },
    { token: { $ne: '' } },
  ]
  for (const evidence of garbage) {
    await refused(t, attestor.attest(evidence, ctx), 'ATTESTATION_EVIDENCE_INVALID', /^join_token evidence/, {
      secret: token,
      what: JSON.stringify(evidence)?.slice(0, 40),
    })
  }
  const step = await attestor.attest({ token }, ctx)
  t.ok(step.done, 'the token is still unused after the garbage')
})

t.test('join_token takes no configuration; the agent needs a printable token', async (t) => {
  t.doesNotThrow(() => attestor.validateConfig(undefined))
  t.doesNotThrow(() => attestor.validateConfig({}))
  t.throws(() => attestor.validateConfig({ ttl: 5 }), { code: 'ATTESTATION_CONFIG_INVALID' })
  await t.rejects(createAgentNodeAttestor('join_token', { token: '' }), TypeError)
  await t.rejects(createAgentNodeAttestor('join_token', { token: 'a b' }), TypeError)
  await t.rejects(createAgentNodeAttestor('join_token', { token: 'x', other: 1 } as never), {
    name: 'TypeError',
    message: /unknown option "other"/,
  })
})
