import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { createAgentNodeAttestor } from '../../agents/attestation/node/registry.ts'
import { X509POP_CONTEXT as AGENT_CONTEXT } from '../../agents/attestation/node/x509pop.ts'
import { createX509PopAttestor, X509POP_CONTEXT } from '../../services/attestation/node/x509pop.ts'
import { x509 } from '../../services/authority/x509-lib.ts'
import { tempDir } from '../helpers/tools.ts'
import { refused } from './helpers/assert.ts'
import { attestationContext } from './helpers/context.ts'
import { b64, DAY, type KeyKind, makeCert, type TestCert } from './helpers/pki.ts'

const attestor = createX509PopAttestor()
const sha256 = (c: TestCert) => createHash('sha256').update(c.der).digest('hex')

const root = await makeCert({ subject: 'CN=Node Root CA', ca: true })
const intermediate = await makeCert({ subject: 'CN=Node Issuing CA', ca: true, issuer: root })
const config = { caBundlePem: root.pem }

async function agentFor(
  t: Parameters<typeof tempDir>[0],
  leaf: TestCert,
  chain: TestCert[] = [intermediate],
) {
  const dir = tempDir(t)
  const certificatePath = path.join(dir, 'node.pem')
  const privateKeyPath = path.join(dir, 'node.key')
  writeFileSync(certificatePath, [leaf, ...chain].map((c) => c.pem).join('\n'))
  writeFileSync(privateKeyPath, leaf.keyPem, { mode: 0o600 })
  return createAgentNodeAttestor('x509pop', { certificatePath, privateKeyPath })
}

/** Both rounds, with the state through JSON as the agent service seals it. */
async function attest(
  ctx: Parameters<typeof attestor.attest>[1],
  agent: Awaited<ReturnType<typeof agentFor>>,
) {
  const first = await attestor.attest(await agent.evidence(), ctx)
  if (first.done) throw new Error('x509pop must challenge')
  const state = JSON.parse(JSON.stringify(first.state))
  const answer = await agent.answer!(JSON.parse(JSON.stringify(first.challenge)))
  return { first, state, answer, final: await attestor.attest(undefined, ctx, { state, answer }) }
}

for (const kind of ['ec-p256', 'ec-p384', 'rsa-2048', 'ed25519'] as KeyKind[]) {
  t.test(`a ${kind} node key proves possession and attests with its chain's selectors`, async (t) => {
    const { ctx } = await attestationContext(t, { config })
    const leaf = await makeCert({
      subject: 'CN=node-1.example.org, O=Example',
      kind,
      issuer: intermediate,
      uris: ['spiffe://example.org/host/node-1'],
    })
    const { final, first } = await attest(ctx, await agentFor(t, leaf))
    t.match(first.challenge, { nonce: /^[A-Za-z0-9_-]{43}$/ })
    t.same(final, {
      done: true,
      result: {
        agentId: `spiffe://example.org/sigil/agent/x509pop/${sha256(leaf)}`,
        selectors: [
          { type: 'x509pop', value: 'subject:cn:node-1.example.org' },
          { type: 'x509pop', value: `ca-fingerprint:${sha256(intermediate)}` },
          { type: 'x509pop', value: `ca-fingerprint:${sha256(root)}` },
          { type: 'x509pop', value: 'san-uri:spiffe://example.org/host/node-1' },
        ],
        canReattest: true,
      },
    })
  })
}

t.test('intermediates may come from their own file; the root may be sent along', async (t) => {
  const { ctx } = await attestationContext(t, { config })
  const leaf = await makeCert({ subject: 'CN=node-2', issuer: intermediate })
  const dir = tempDir(t)
  writeFileSync(path.join(dir, 'leaf.pem'), leaf.pem)
  writeFileSync(path.join(dir, 'chain.pem'), intermediate.pem + root.pem)
  writeFileSync(path.join(dir, 'leaf.key'), leaf.keyPem)
  const agent = await createAgentNodeAttestor('x509pop', {
    certificatePath: path.join(dir, 'leaf.pem'),
    privateKeyPath: path.join(dir, 'leaf.key'),
    intermediatesPath: path.join(dir, 'chain.pem'),
  })
  t.equal(((await agent.evidence()) as { certificates: string[] }).certificates.length, 3)
  const { final } = await attest(ctx, agent)
  t.ok(final.done)
})

t.test('a signature by another key, or over another nonce, is refused', async (t) => {
  const { ctx } = await attestationContext(t, { config })
  const leaf = await makeCert({ subject: 'CN=node-3', issuer: intermediate })
  const thief = await makeCert({
    subject: 'CN=node-3',
    issuer: await makeCert({ subject: 'CN=Other CA', ca: true }),
  })
  const agent = await agentFor(t, leaf)
  const impostor = await agentFor(t, thief, [])
  const first = await attestor.attest(await agent.evidence(), ctx)
  if (first.done) throw new Error('x509pop must challenge')
  const forged = await impostor.answer!(first.challenge)
  await refused(
    t,
    attestor.attest(undefined, ctx, { state: first.state, answer: forged }),
    'ATTESTATION_FAILED',
    /proof of possession failed for spiffe:\/\/example\.org\/sigil\/agent\/x509pop\//,
  )

  const old = await attest(ctx, agent)
  const second = await attestor.attest(await agent.evidence(), ctx)
  if (second.done) throw new Error('x509pop must challenge')
  await refused(
    t,
    attestor.attest(undefined, ctx, { state: second.state, answer: old.answer }),
    'ATTESTATION_FAILED',
    /proof of possession/,
    { what: 'an answer to an earlier challenge' },
  )
})

t.test('a challenge answered too late is refused', async (t) => {
  const { ctx, clock } = await attestationContext(t, { config })
  const agent = await agentFor(t, await makeCert({ subject: 'CN=node-4', issuer: intermediate }))
  const first = await attestor.attest(await agent.evidence(), ctx)
  if (first.done) throw new Error('x509pop must challenge')
  const answer = await agent.answer!(first.challenge)
  clock.advance(61_000)
  await refused(
    t,
    attestor.attest(undefined, ctx, { state: first.state, answer }),
    'ATTESTATION_FAILED',
    /challenge .* expired/,
  )
})

t.test('chains that must not attest', async (t) => {
  const { ctx } = await attestationContext(t, { config })
  const now = Date.now()
  const otherRoot = await makeCert({ subject: 'CN=Someone Else CA', ca: true })
  const notCa = await makeCert({ subject: 'CN=Not A CA', issuer: root })
  const oldIntermediate = await makeCert({
    subject: 'CN=Old CA',
    ca: true,
    issuer: root,
    notAfter: now - DAY,
  })
  const strictRoot = await makeCert({ subject: 'CN=Strict Root', ca: true, pathLength: 0 })
  const strictMid = await makeCert({ subject: 'CN=Strict Mid', ca: true, issuer: strictRoot })
  const cases: [string, TestCert[], RegExp, unknown?][] = [
    [
      'another CA',
      [await makeCert({ subject: 'CN=n', issuer: otherRoot })],
      /does not chain to a trusted CA/,
    ],
    [
      'no intermediate sent',
      [await makeCert({ subject: 'CN=n', issuer: intermediate })],
      /does not chain to a trusted CA/,
    ],
    [
      'expired leaf',
      [await makeCert({ subject: 'CN=n', issuer: intermediate, notAfter: now - 1000 }), intermediate],
      /expired at/,
    ],
    [
      'leaf not yet valid',
      [await makeCert({ subject: 'CN=n', issuer: intermediate, notBefore: now + DAY }), intermediate],
      /not valid before/,
    ],
    [
      'CA as leaf',
      [await makeCert({ subject: 'CN=n', ca: true, issuer: intermediate }), intermediate],
      /is a CA certificate/,
    ],
    [
      'leaf that may not sign',
      [
        await makeCert({
          subject: 'CN=n',
          issuer: intermediate,
          keyUsage: x509.KeyUsageFlags.keyEncipherment,
        }),
        intermediate,
      ],
      /keyUsage lacks digitalSignature/,
    ],
    ['issued by a non-CA', [await makeCert({ subject: 'CN=n', issuer: notCa }), notCa], /is not a CA/],
    [
      'expired intermediate',
      [await makeCert({ subject: 'CN=n', issuer: oldIntermediate }), oldIntermediate],
      /expired at/,
    ],
    [
      'path length exceeded',
      [await makeCert({ subject: 'CN=n', issuer: strictMid }), strictMid],
      /allows 0 CA/,
      { caBundlePem: strictRoot.pem },
    ],
  ]
  for (const [what, chain, message, cfg] of cases) {
    const use = cfg ? (await attestationContext(t, { config: cfg })).ctx : ctx
    await refused(t, attestor.attest({ certificates: chain.map(b64) }, use), 'ATTESTATION_FAILED', message, {
      what,
    })
  }
})

t.test('garbage evidence and answers are refused', async (t) => {
  const { ctx } = await attestationContext(t, { config })
  const leaf = await makeCert({ subject: 'CN=n', issuer: intermediate })
  const evidence: unknown[] = [
    null,
    'cert',
    { certificates: 'MIIB' },
    { certificates: [] },
    { certificates: Array(9).fill(b64(leaf)) },
    { certificates: [42] },
    { certificates: ['not base64!'] },
    { certificates: [Buffer.from('garbage').toString('base64')] },
    { certificates: ['A'.repeat(100_000)] },
    { certificates: [b64(leaf)], nonce: 'x' },
  ]
  for (const e of evidence) {
    await refused(t, attestor.attest(e, ctx), 'ATTESTATION_EVIDENCE_INVALID', /^x509pop evidence/, {
      what: JSON.stringify(e).slice(0, 50),
    })
  }
  const agent = await agentFor(t, leaf)
  const first = await attestor.attest(await agent.evidence(), ctx)
  if (first.done) throw new Error('x509pop must challenge')
  for (const answer of [null, {}, { signature: 5 }, { signature: '!!' }, { signature: 'A'.repeat(10_000) }]) {
    await refused(
      t,
      attestor.attest(undefined, ctx, { state: first.state, answer }),
      'ATTESTATION_EVIDENCE_INVALID',
      /x509pop evidence/,
      { what: JSON.stringify(answer).slice(0, 30) },
    )
  }
  await t.rejects(agent.answer!({ nonce: 'short' }), { code: 'ATTESTATION_CHALLENGE_INVALID' })
  await t.rejects(agent.answer!(null), { code: 'ATTESTATION_CHALLENGE_INVALID' })
})

t.test('configuration: a CA bundle is required, and only CAs belong in it', async (t) => {
  const { ctx } = await attestationContext(t)
  await refused(
    t,
    attestor.attest({ certificates: [] }, ctx),
    'ATTESTOR_NOT_ENABLED',
    /x509pop is not enabled for trust domain "example.org"/,
  )
  const leaf = await makeCert({ subject: 'CN=n', issuer: root })
  t.throws(() => attestor.validateConfig({}), {
    code: 'ATTESTATION_CONFIG_INVALID',
    message: /must have required property 'caBundlePem'/,
  })
  t.throws(() => attestor.validateConfig({ caBundlePem: root.pem, extra: 1 }), {
    message: /unknown key "extra"/,
  })
  t.throws(() => attestor.validateConfig({ caBundlePem: 'nothing here' }), {
    message: /holds no PEM certificate/,
  })
  t.throws(() => attestor.validateConfig({ caBundlePem: leaf.pem }), { message: /is not a CA certificate/ })
  t.doesNotThrow(() => attestor.validateConfig({ caBundlePem: root.pem + intermediate.pem }))
})

t.test('the agent refuses a key that does not match its certificate, or a missing file', async (t) => {
  const dir = tempDir(t)
  const leaf = await makeCert({ subject: 'CN=n', issuer: intermediate })
  const other = await makeCert({ subject: 'CN=o', issuer: intermediate })
  writeFileSync(path.join(dir, 'c.pem'), leaf.pem)
  writeFileSync(path.join(dir, 'k.pem'), other.keyPem)
  await t.rejects(
    createAgentNodeAttestor('x509pop', {
      certificatePath: path.join(dir, 'c.pem'),
      privateKeyPath: path.join(dir, 'k.pem'),
    }),
    { name: 'TypeError', message: /does not belong to the certificate/ },
  )
  await t.rejects(
    createAgentNodeAttestor('x509pop', {
      certificatePath: path.join(dir, 'missing.pem'),
      privateKeyPath: path.join(dir, 'k.pem'),
    }),
    { name: 'TypeError', message: /cannot read the certificate file .*missing\.pem \(ENOENT\)/ },
  )
})

t.test('agent and server sign and verify the same challenge message', async (t) => {
  t.equal(AGENT_CONTEXT, X509POP_CONTEXT)
})
