import { X509Certificate } from 'node:crypto'
import t from 'tap'
import { agentNodeAttestorNames, createAgentNodeAttestor } from '../../agents/attestation/node/registry.ts'
import { AttestationError } from '../../services/attestation/errors.ts'
import { awsSignatureCertificates } from '../../services/attestation/node/aws-certificates.ts'
import { createNodeAttestorRegistry, nodeAttestorNames } from '../../services/attestation/node/registry.ts'
import { SigilError } from '../../services/errors.ts'
import { refused } from './helpers/assert.ts'
import { attestationContext } from './helpers/context.ts'
import { makeCert } from './helpers/pki.ts'

t.test('attestation errors are SigilErrors with registered codes', async (t) => {
  const cause = new Error('inner')
  const err = new AttestationError('ATTESTATION_REPLAYED', 'again', { cause })
  t.match(err, { code: 'ATTESTATION_REPLAYED', status: 401, cause, name: 'AttestationError' })
  t.ok(err instanceof SigilError, 'the API answers it with its code and status')
})

t.test('the server registry: names, lookup, unknown names, settings validation', async (t) => {
  const registry = createNodeAttestorRegistry()
  t.same([...registry.names], ['join_token', 'x509pop', 'aws_iid', 'k8s_psat', 'gcp_iit', 'azure_msi'])
  t.same(
    [...agentNodeAttestorNames].sort(),
    [...nodeAttestorNames].sort(),
    'the agent and the server know the same attestors',
  )
  for (const name of registry.names) {
    const attestor = registry.get(name)!
    t.equal(attestor.name, name)
    t.equal(registry.get(name), attestor, 'built once')
    if (attestor.configSchema)
      t.equal(attestor.configSchema.additionalProperties, false, `${name} refuses unknown keys`)
  }
  t.equal(registry.get('tpm'), undefined)
  t.equal(registry.get('__proto__'), undefined)
  t.throws(() => registry.require('tpm'), {
    code: 'ATTESTOR_UNKNOWN',
    message: /"tpm" is unknown \(known: join_token, x509pop/,
  })
  const root = await makeCert({ subject: 'CN=Root', ca: true })
  t.doesNotThrow(() =>
    registry.validateSettings({
      join_token: {},
      x509pop: { caBundlePem: root.pem },
      k8s_psat: {
        clusters: {
          prod: { issuer: 'https://k8s.example', audience: 'sigil', allowAnyServiceAccount: true },
        },
      },
    }),
  )
  t.throws(() => registry.validateSettings({ tpm: {} }), { code: 'ATTESTOR_UNKNOWN' })
  t.throws(() => registry.validateSettings({ gcp_iit: { audience: 'a', allowAnyProject: 'yes' } }), {
    code: 'ATTESTATION_CONFIG_INVALID',
    message: /nodeAttestors.gcp_iit.allowAnyProject must be boolean/,
  })
  t.throws(() => registry.validateSettings([]), { code: 'ATTESTATION_CONFIG_INVALID' })
  t.throws(() => createNodeAttestorRegistry({ ec2Client: 'aws' as never }), TypeError)
})

t.test('single-round attestors refuse a second round as misuse', async (t) => {
  const registry = createNodeAttestorRegistry()
  const { ctx } = await attestationContext(t)
  for (const name of ['join_token', 'aws_iid', 'k8s_psat', 'gcp_iit', 'azure_msi']) {
    await t.rejects(registry.require(name).attest(undefined, ctx, { state: {}, answer: {} }), TypeError, name)
  }
})

t.test('no attestor crashes or accepts on garbage', async (t) => {
  const registry = createNodeAttestorRegistry()
  const root = await makeCert({ subject: 'CN=Root', ca: true })
  const configs: Record<string, unknown> = {
    join_token: undefined,
    x509pop: { caBundlePem: root.pem },
    aws_iid: { allowAnyAccount: true },
    k8s_psat: {
      clusters: { prod: { issuer: 'http://127.0.0.1:9', audience: 'sigil', allowAnyServiceAccount: true } },
    },
    gcp_iit: { audience: 'sigil', allowAnyProject: true, jwksUrl: 'http://127.0.0.1:9/certs' },
    azure_msi: {
      tenants: {
        '72f988bf-86f1-41af-91ab-2d7cd011db47': { audience: 'sigil', jwksUrl: 'http://127.0.0.1:9/keys' },
      },
    },
  }
  const deep: Record<string, unknown> = {}
  let cursor = deep
  for (let i = 0; i < 1000; i++) {
    const next: Record<string, unknown> = {}
    cursor.a = next
    cursor = next
  }
  const garbage: unknown[] = [
    undefined,
    null,
    true,
    0,
    Number.NaN,
    '',
    'x'.repeat(1_000_000),
    [],
    {},
    deep,
    JSON.parse('{"__proto__":{"polluted":true}}'),
    { token: ['a'], cluster: 'prod', document: {}, certificates: [{}] },
    { token: '\u0000\u0001', cluster: '\u0000', document: '\u0000', certificates: ['\u0000'] },
  ]
  for (const name of registry.names) {
    const { ctx } = await attestationContext(t, { config: configs[name] })
    for (const evidence of garbage) {
      try {
        await registry.require(name).attest(evidence, ctx)
        t.fail(`${name} accepted ${JSON.stringify(evidence)?.slice(0, 30)}`)
      } catch (err) {
        t.ok(
          err instanceof AttestationError,
          `${name}: ${String(JSON.stringify(evidence)).slice(0, 30)} -> ${(err as Error).message.slice(0, 90)}`,
        )
        t.equal((err as AttestationError).code, 'ATTESTATION_EVIDENCE_INVALID')
      }
    }
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted')
})

t.test('the agent registry refuses unknown attestors and misshapen configuration', async (t) => {
  await t.rejects(createAgentNodeAttestor('tpm', {}), {
    name: 'TypeError',
    message: /unknown node attestor "tpm" \(known: join_token/,
  })
  await t.rejects(createAgentNodeAttestor('constructor', {}), TypeError)
  await t.rejects(createAgentNodeAttestor('aws_iid', null), {
    name: 'TypeError',
    message: /must be an object/,
  })
  await t.rejects(createAgentNodeAttestor('aws_iid', { timeoutMs: -1 }), {
    name: 'TypeError',
    message: /timeoutMs/,
  })
  await t.rejects(createAgentNodeAttestor('k8s_psat', {}), {
    name: 'TypeError',
    message: /cluster must be a non-empty string/,
  })
  await t.rejects(createAgentNodeAttestor('gcp_iit', { audience: 'a', metadataUrl: 'ftp://x' }), {
    name: 'TypeError',
    message: /metadataUrl must be an http\(s\) URL/,
  })
  await t.rejects(createAgentNodeAttestor('aws_iid', {}, { fetch: 'no' as never }), TypeError)
})

t.test('the built-in AWS signature certificates parse and are self-signed RSA', async (t) => {
  t.ok(Object.keys(awsSignatureCertificates).includes('us-east-1'))
  for (const [region, pem] of Object.entries(awsSignatureCertificates)) {
    t.match(region, /^[a-z]{2}-[a-z]+-\d$/)
    const cert = new X509Certificate(pem)
    t.equal(cert.publicKey.asymmetricKeyType, 'rsa', `${region} is RSA`)
    t.ok(cert.verify(cert.publicKey), `${region} verifies under its own key`)
    t.match(cert.subject, /O=Amazon Web Services LLC/)
  }
})

t.test('an attestor that is not configured for the trust domain says how to enable it', async (t) => {
  const registry = createNodeAttestorRegistry()
  const { ctx } = await attestationContext(t, { trustDomain: 'prod.example' })
  for (const name of ['x509pop', 'aws_iid', 'k8s_psat', 'gcp_iit', 'azure_msi']) {
    await refused(
      t,
      registry.require(name).attest({}, ctx),
      'ATTESTOR_NOT_ENABLED',
      new RegExp(
        `node attestor ${name} is not enabled for trust domain "prod.example".*nodeAttestors.${name}`,
      ),
    )
  }
})
