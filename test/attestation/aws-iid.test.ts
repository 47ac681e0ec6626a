import { X509Certificate } from 'node:crypto'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import t from 'tap'
import { createAgentNodeAttestor } from '../../agents/attestation/node/registry.ts'
import { createAwsIidAttestor } from '../../services/attestation/node/aws-iid.ts'
import { verifySignedData } from '../../services/attestation/node/cms.ts'
import { parsePemCertificates } from '../../services/authority/x509-chain.ts'
import { tempDir } from '../helpers/tools.ts'
import { refused } from './helpers/assert.ts'
import { identityDocument, makeSigner, signerFromPem, signPkcs7, signRsa, startImds } from './helpers/aws.ts'
import { attestationContext } from './helpers/context.ts'
import { makeCert } from './helpers/pki.ts'

const dir = tempDir(t)
const dsa = makeSigner(dir, 'aws-dsa', 'dsa')
const rsa = makeSigner(dir, 'aws-rsa', 'rsa')
const forger = makeSigner(dir, 'forger-rsa', 'rsa')
const forgerDsa = makeSigner(dir, 'forger-dsa', 'dsa')
// Same subject and serial as the trusted DSA certificate, another key: the SignerIdentifier matches.
const lookAlike = makeSigner(dir, 'look-alike', 'dsa', {
  commonName: 'aws-dsa',
  serialHex: new X509Certificate(dsa.certPem).serialNumber,
})
const config = {
  accountAllowList: ['123456789012'],
  regionCertificates: { 'us-east-1': dsa.certPem + rsa.certPem },
  useBuiltInCertificates: false,
}
const attestor = createAwsIidAttestor()
const doc = identityDocument()
const AGENT_ID = 'spiffe://example.org/sigil/agent/aws_iid/123456789012/us-east-1/i-0a1b2c3d4e5f60718'

t.test(
  'the agent fetches both forms from IMDSv2; the server verifies and attests the instance once',
  async (t) => {
    const imds = await startImds(t, {
      document: doc,
      pkcs7: signPkcs7(dir, doc, dsa),
      signature: signRsa(doc, rsa),
    })
    const agent = await createAgentNodeAttestor('aws_iid', { imdsUrl: imds.url })
    const evidence = await agent.evidence()
    t.match(evidence, { document: doc, pkcs7: /^MI/, signature: /^[A-Za-z0-9+/]+=*$/ })
    t.equal(imds.requests[0]?.method, 'PUT', 'an IMDSv2 session comes first')
    const { ctx } = await attestationContext(t, { config })
    t.same(await attestor.attest(evidence, ctx), {
      done: true,
      result: {
        agentId: AGENT_ID,
        selectors: [
          { type: 'aws_iid', value: 'account:123456789012' },
          { type: 'aws_iid', value: 'region:us-east-1' },
          { type: 'aws_iid', value: 'instance-id:i-0a1b2c3d4e5f60718' },
          { type: 'aws_iid', value: 'az:us-east-1b' },
        ],
        canReattest: false,
      },
    })
    await refused(
      t,
      attestor.attest(evidence, ctx),
      'ATTESTATION_REPLAYED',
      /instance i-0a1b2c3d4e5f60718 \(account 123456789012, us-east-1\) has already attested.*allowReattest/,
    )
  },
)

t.test('allowReattest lets an instance attest again', async (t) => {
  const { ctx } = await attestationContext(t, { config: { ...config, allowReattest: true } })
  const evidence = { document: doc, signature: signRsa(doc, rsa) }
  for (let i = 0; i < 2; i++) {
    const step = await attestor.attest(evidence, ctx)
    t.equal(step.done && step.result.canReattest, true)
  }
})

t.test('each signature form verifies on its own', async (t) => {
  const { ctx } = await attestationContext(t, { config: { ...config, allowReattest: true } })
  const forms: [string, Record<string, string>][] = [
    ['PKCS#7, DSA with SHA-1 (as AWS signs)', { pkcs7: signPkcs7(dir, doc, dsa) }],
    ['PKCS#7, DSA with SHA-256', { pkcs7: signPkcs7(dir, doc, dsa, { md: 'sha256' }) }],
    ['PKCS#7, RSA with SHA-256', { pkcs7: signPkcs7(dir, doc, rsa, { md: 'sha256' }) }],
    [
      'PKCS#7 without signed attributes',
      { pkcs7: signPkcs7(dir, doc, rsa, { md: 'sha256', noAttributes: true }) },
    ],
    ['PKCS#7 naming its signer by key id', { pkcs7: signPkcs7(dir, doc, dsa, { keyId: true }) }],
    ['PKCS#7 with the signer certificate embedded', { pkcs7: signPkcs7(dir, doc, dsa, { embedCert: true }) }],
    ['base64 RSA-SHA256', { signature: signRsa(doc, rsa) }],
    [
      'a bad RSA signature beside a good PKCS#7',
      { pkcs7: signPkcs7(dir, doc, dsa), signature: signRsa(doc, forger) },
    ],
  ]
  for (const [what, form] of forms) {
    const step = await attestor.attest({ document: doc, ...form }, ctx)
    t.equal(step.done && step.result.agentId, AGENT_ID, what)
  }
})

t.test('a PKCS#7 signer issued by a trusted root (extraRootsPem) and embedded is accepted', async (t) => {
  const ca = await makeCert({ subject: 'CN=Test IID Root', ca: true, kind: 'rsa-2048' })
  const leaf = await makeCert({ subject: 'CN=Test IID Signer', issuer: ca, kind: 'ec-p256' })
  const signer = signerFromPem(dir, 'iid-signer', leaf.pem, leaf.keyPem)
  const { ctx } = await attestationContext(t, {
    config: {
      allowAnyAccount: true,
      extraRootsPem: ca.pem,
      useBuiltInCertificates: false,
      allowReattest: true,
    },
  })
  const step = await attestor.attest(
    { document: doc, pkcs7: signPkcs7(dir, doc, signer, { embedCert: true, md: 'sha256' }) },
    ctx,
  )
  t.equal(step.done && step.result.agentId, AGENT_ID)

  const otherCa = await makeCert({ subject: 'CN=Test IID Root', ca: true, kind: 'rsa-2048' })
  const rogue = signerFromPem(
    dir,
    'rogue',
    (await makeCert({ subject: 'CN=Test IID Signer', issuer: otherCa })).pem,
    leaf.keyPem,
  )
  const rogueLeaf = await makeCert({ subject: 'CN=Test IID Signer', issuer: otherCa })
  const rogueSigner = signerFromPem(dir, 'rogue2', rogueLeaf.pem, rogueLeaf.keyPem)
  t.ok(rogue)
  await refused(
    t,
    attestor.attest(
      { document: doc, pkcs7: signPkcs7(dir, doc, rogueSigner, { embedCert: true, md: 'sha256' }) },
      ctx,
    ),
    'ATTESTATION_FAILED',
    /not signed by AWS: PKCS#7 signer: certificate .* does not chain to a trusted CA/,
    { what: 'a look-alike CA' },
  )
})

t.test('pkijs agrees with the verifier on RSA PKCS#7 (differential)', async (t) => {
  const trusted = parsePemCertificates(rsa.certPem, 'rsa')
  for (const [what, pkcs7, valid] of [
    ['valid', signPkcs7(dir, doc, rsa, { md: 'sha256' }), true],
    ['with a flipped signature bit', signPkcs7(dir, doc, rsa, { md: 'sha256' }), false],
  ] as const) {
    const der = Buffer.from(pkcs7, 'base64')
    // The signature value is the last field of the DER; flip a bit in it.
    if (!valid) der[der.length - 1]! ^= 1
    let ours = true
    try {
      verifySignedData(der, trusted, Date.now())
    } catch {
      ours = false
    }
    const sd = new pkijs.SignedData({
      schema: new pkijs.ContentInfo({ schema: asn1js.fromBER(der).result }).content,
    })
    sd.certificates = [pkijs.Certificate.fromBER(trusted[0]!.der)]
    const theirs = await sd.verify({ signer: 0, checkChain: false }).catch(() => false)
    t.equal(ours, valid, `verifier: ${what}`)
    t.equal(theirs, valid, `pkijs: ${what}`)
  }
})

t.test('forged, altered and mismatched documents are refused', async (t) => {
  const { ctx } = await attestationContext(t, { config })
  const other = identityDocument({ instanceId: 'i-0fffffffffffffff0' })
  const cases: [string, Record<string, string>, RegExp][] = [
    [
      'RSA signature by another key',
      { document: doc, signature: signRsa(doc, forger) },
      /not signed by AWS: the RSA-SHA256 signature does not verify/,
    ],
    [
      'PKCS#7 by another DSA key',
      { document: doc, pkcs7: signPkcs7(dir, doc, forgerDsa) },
      /PKCS#7 is signed by a certificate that is neither trusted nor embedded/,
    ],
    [
      "PKCS#7 by another key under the trusted certificate's name",
      { document: doc, pkcs7: signPkcs7(dir, doc, lookAlike) },
      /PKCS#7 signature does not verify/,
    ],
    [
      'a document other than the PKCS#7 content',
      { document: other, pkcs7: signPkcs7(dir, doc, dsa) },
      /over another document/,
    ],
    [
      'a signature over another document',
      { document: other, signature: signRsa(doc, rsa) },
      /does not verify/,
    ],
    [
      'an edited document',
      { document: doc.replace('t3.micro', 'm5.24xlarge'), signature: signRsa(doc, rsa) },
      /does not verify/,
    ],
  ]
  for (const [what, evidence, message] of cases) {
    await refused(t, attestor.attest(evidence, ctx), 'ATTESTATION_FAILED', message, { what })
  }
})

t.test('regions without certificates, accounts not allowed, and the built-in AWS certificates', async (t) => {
  const { ctx, with: withConfig } = await attestationContext(t, { config })
  const far = identityDocument({ region: 'eu-west-9', availabilityZone: 'eu-west-9a' })
  await refused(
    t,
    attestor.attest({ document: far, signature: signRsa(far, rsa) }, ctx),
    'ATTESTATION_FAILED',
    /no AWS certificate is configured for region "eu-west-9"; add it to nodeAttestors.aws_iid.regionCertificates/,
  )
  const foreign = identityDocument({ accountId: '999999999999' })
  await refused(
    t,
    attestor.attest({ document: foreign, signature: signRsa(foreign, rsa) }, ctx),
    'ATTESTATION_FAILED',
    /account 999999999999 is not in accountAllowList/,
  )
  const builtIn = withConfig({ allowAnyAccount: true })
  await refused(
    t,
    attestor.attest({ document: doc, signature: signRsa(doc, rsa) }, builtIn),
    'ATTESTATION_FAILED',
    /does not verify with any certificate of the region/,
    { what: "our key against AWS's us-east-1 certificate" },
  )
})

t.test('garbage evidence is refused with a clear error', async (t) => {
  const { ctx } = await attestationContext(t, { config })
  const evidence: [unknown, string, RegExp][] = [
    [null, 'ATTESTATION_EVIDENCE_INVALID', /must be a JSON object/],
    [{ document: 5 }, 'ATTESTATION_EVIDENCE_INVALID', /document must be a string/],
    [{ document: doc }, 'ATTESTATION_EVIDENCE_INVALID', /neither pkcs7 nor signature/],
    [{ document: 'not json', signature: 'AAAA' }, 'ATTESTATION_EVIDENCE_INVALID', /document is not JSON/],
    [{ document: '[1]', signature: 'AAAA' }, 'ATTESTATION_EVIDENCE_INVALID', /not a JSON object/],
    [{ document: '{}', signature: 'AAAA' }, 'ATTESTATION_EVIDENCE_INVALID', /names no valid region/],
    [{ document: 'x'.repeat(1_000_000), signature: 'AAAA' }, 'ATTESTATION_EVIDENCE_INVALID', /at most 8192/],
    [{ document: doc, pkcs7: 'not base64!' }, 'ATTESTATION_EVIDENCE_INVALID', /pkcs7 is not base64/],
    [
      { document: doc, pkcs7: 'A'.repeat(100_000) },
      'ATTESTATION_EVIDENCE_INVALID',
      /pkcs7 is 100000 characters/,
    ],
    [
      { document: doc, pkcs7: Buffer.from('random bytes, not DER').toString('base64') },
      'ATTESTATION_FAILED',
      /PKCS#7 is not a single DER structure/,
    ],
    [
      { document: doc, pkcs7: Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]).toString('base64') },
      'ATTESTATION_FAILED',
      /PKCS#7 is not a CMS ContentInfo/,
    ],
    [{ document: doc, signature: [] }, 'ATTESTATION_EVIDENCE_INVALID', /signature must be a string/],
    [
      { document: doc, signature: 'AAAA', instanceId: 'i-1' },
      'ATTESTATION_EVIDENCE_INVALID',
      /unknown field "instanceId"/,
    ],
  ]
  for (const [e, code, message] of evidence) {
    await refused(t, attestor.attest(e, ctx), code, message, { what: JSON.stringify(e)?.slice(0, 50) })
  }
  const bad = identityDocument({ instanceId: '../../etc' })
  await refused(
    t,
    attestor.attest({ document: bad, signature: signRsa(bad, rsa) }, ctx),
    'ATTESTATION_FAILED',
    /signed identity document has no valid instanceId/,
  )
})

t.test('configuration is checked, and aws_iid is off until configured', async (t) => {
  const { ctx } = await attestationContext(t)
  await refused(
    t,
    attestor.attest({ document: doc, signature: 'AAAA' }, ctx),
    'ATTESTOR_NOT_ENABLED',
    /aws_iid is not enabled/,
  )
  t.throws(() => attestor.validateConfig({}), {
    code: 'ATTESTATION_CONFIG_INVALID',
    message: /accountAllowList.*allowAnyAccount: true/,
  })
  t.throws(
    () => attestor.validateConfig({ allowAnyAccount: true, regionCertificates: { 'us-east-1': 'junk' } }),
    { message: /regionCertificates.us-east-1 holds no PEM certificate/ },
  )
  t.throws(() => attestor.validateConfig({ allowAnyAccount: true, ec2: { requireTag: {} } }), {
    message: /nodeAttestors.aws_iid.ec2 has an unknown key "requireTag"/,
  })
  t.throws(() => attestor.validateConfig({ accountAllowList: ['12345'] }), {
    message: /accountAllowList.0 must match pattern/,
  })
  t.doesNotThrow(() => attestor.validateConfig(config))
})

t.test('the agent reports an unreachable or incomplete IMDS clearly', async (t) => {
  const dead = await createAgentNodeAttestor('aws_iid', { imdsUrl: 'http://127.0.0.1:9', timeoutMs: 1000 })
  await t.rejects(dead.evidence(), {
    code: 'ATTESTATION_EVIDENCE_UNAVAILABLE',
    message: /PUT http:\/\/127\.0\.0\.1:9\/latest\/api\/token failed/,
  })
  const imds = await startImds(t, { document: doc })
  const partial = await createAgentNodeAttestor('aws_iid', { imdsUrl: imds.url })
  await t.rejects(partial.evidence(), {
    code: 'ATTESTATION_EVIDENCE_UNAVAILABLE',
    message: /neither the PKCS#7 nor the RSA signature/,
  })
  await t.rejects(createAgentNodeAttestor('aws_iid', { imdsUrl: 'file:///etc/passwd' }), TypeError)
})
