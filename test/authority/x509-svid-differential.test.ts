// The fast issuer and the @peculiar/x509 reference builder must produce the same TBSCertificate for the
// same inputs; with an RSA PKCS#1 v1.5 issuer (deterministic signatures) the whole certificate.

import { X509Certificate } from 'node:crypto'
import t from 'tap'
import type { CaKeyType } from '../../services/authority/ca-certs.ts'
import { generateKeyPair } from '../../services/authority/ca-certs.ts'
import {
  issueX509SvidGeneric,
  type SvidSpec,
  tbsOf,
  X509SvidIssuer,
} from '../../services/authority/x509-svid.ts'
import { DAY, makeCa } from './fixtures/helpers.ts'

const now = Date.now()

async function leafSpkis(): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {}
  for (const kt of ['ec-p256', 'ec-p384', 'rsa-2048'] as CaKeyType[]) {
    const { publicKey } = await generateKeyPair(kt)
    out[kt] = publicKey.export({ format: 'der', type: 'spki' })
  }
  return out
}

function specs(spkis: Record<string, Buffer>): Array<[string, SvidSpec]> {
  const longPath = `/${'segment-'.repeat(120)}end`
  return [
    [
      'P-256 leaf, no DNS names, random serial',
      {
        spki: spkis['ec-p256']!,
        spiffeId: 'spiffe://example.org/ns/prod/sa/api',
        dnsNames: [],
        notBefore: now,
        notAfter: now + 3_600_000,
      },
    ],
    [
      'P-384 leaf with DNS names',
      {
        spki: spkis['ec-p384']!,
        spiffeId: 'spiffe://example.org/web',
        dnsNames: ['web.example.org', '*.svc.cluster.local', 'localhost'],
        notBefore: now - 1234,
        notAfter: now + DAY + 567,
      },
    ],
    [
      'RSA leaf, serial with the top bit set',
      {
        spki: spkis['rsa-2048']!,
        spiffeId: 'spiffe://example.org/db',
        dnsNames: ['db'],
        notBefore: now,
        notAfter: now + 60_000,
        serial: Buffer.from('ff'.repeat(16), 'hex'),
      },
    ],
    [
      'serial with leading zeros',
      {
        spki: spkis['ec-p256']!,
        spiffeId: 'spiffe://example.org/a',
        dnsNames: [],
        notBefore: now,
        notAfter: now + 60_000,
        serial: Buffer.from('0000000000000000000000000000012a', 'hex'),
      },
    ],
    [
      'long SPIFFE ID and many DNS names (multi-byte lengths)',
      {
        spki: spkis['ec-p256']!,
        spiffeId: `spiffe://example.org${longPath}`,
        dnsNames: Array.from({ length: 40 }, (_, i) => `host-${i}.example.org`),
        notBefore: now,
        notAfter: now + 60_000,
      },
    ],
    [
      'validity into 2050+ (GeneralizedTime)',
      {
        spki: spkis['ec-p256']!,
        spiffeId: 'spiffe://example.org/long-lived',
        dnsNames: [],
        notBefore: Date.UTC(2049, 11, 31, 23, 59, 59),
        notAfter: Date.UTC(2050, 0, 1, 0, 0, 1),
      },
    ],
  ]
}

for (const caType of ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072'] as CaKeyType[]) {
  t.test(`${caType} issuer: fast and generic builders agree`, async (t) => {
    // The CA outlives 2050 so the GeneralizedTime case is within the issuer's validity.
    const ca = await makeCa(caType, { rootDays: 365 * 40 })
    const fast = new X509SvidIssuer(ca.issuer)
    const spkis = await leafSpkis()
    for (const [what, spec] of specs(spkis)) {
      const a = fast.issue(spec)
      const serial = Buffer.from(a.serialHex, 'hex')
      const b = await issueX509SvidGeneric(ca.issuer, { ...spec, serial })
      t.equal(a.serialHex, b.serialHex, `${what}: serialHex`)
      t.equal(
        tbsOf(a.der).toString('hex'),
        tbsOf(b.der).toString('hex'),
        `${what}: TBSCertificate bytes equal`,
      )
      t.ok(new X509Certificate(a.der).verify(ca.intermediatePublicKey), `${what}: fast signature verifies`)
      t.ok(new X509Certificate(b.der).verify(ca.intermediatePublicKey), `${what}: generic signature verifies`)
      if (caType.startsWith('rsa'))
        t.ok(a.der.equals(b.der), `${what}: RSA PKCS#1 v1.5 certificates byte-identical`)
      else t.notOk(a.der.equals(b.der), `${what}: ECDSA signatures differ (randomized), TBS does not`)
    }
  })
}

t.test('the differential comparison can fail', async (t) => {
  const ca = await makeCa('ec-p256')
  const spkis = await leafSpkis()
  const spec: SvidSpec = {
    spki: spkis['ec-p256']!,
    spiffeId: 'spiffe://example.org/x',
    dnsNames: [],
    notBefore: now,
    notAfter: now + 60_000,
  }
  const a = new X509SvidIssuer(ca.issuer).issue(spec)
  const b = await issueX509SvidGeneric(ca.issuer, {
    ...spec,
    serial: Buffer.from(a.serialHex, 'hex'),
    dnsNames: ['x'],
  })
  t.not(tbsOf(a.der).toString('hex'), tbsOf(b.der).toString('hex'), 'different inputs give different TBS')
  const c = await issueX509SvidGeneric(ca.issuer, spec)
  t.not(c.serialHex, a.serialHex, 'serials are random when omitted')
})
