// What the issuer refuses: it is the last line of defence, so it re-checks what callers should have.

import { generateKeyPairSync } from 'node:crypto'
import t from 'tap'
import { generateKeyPair } from '../../services/authority/ca-certs.ts'
import { SpiffeIdError } from '../../services/authority/spiffe-id.ts'
import {
  inspectCertificate,
  issueX509SvidGeneric,
  type SvidSpec,
  X509SvidError,
  X509SvidIssuer,
} from '../../services/authority/x509-svid.ts'
import { DAY, makeCa } from './fixtures/helpers.ts'

const now = Date.now()
const ca = await makeCa('ec-p256')
const issuer = new X509SvidIssuer(ca.issuer)
const { publicKey } = await generateKeyPair('ec-p256')
const spki = publicKey.export({ format: 'der', type: 'spki' })
const base: SvidSpec = {
  spki,
  spiffeId: 'spiffe://example.org/w',
  dnsNames: [],
  notBefore: now,
  notAfter: now + 60_000,
}

function codeOf(spec: Partial<SvidSpec>): string {
  try {
    issuer.issue({ ...base, ...spec })
    return 'ISSUED'
  } catch (err) {
    if (err instanceof X509SvidError || err instanceof SpiffeIdError) return err.code
    return `OTHER: ${String(err)}`
  }
}

t.test('control: the base spec issues', async (t) => {
  t.equal(codeOf({}), 'ISSUED')
  t.equal(issuer.trustDomain, 'example.org')
})

t.test('SPIFFE IDs outside the issuer trust domain, or without a workload path, are refused', async (t) => {
  t.equal(codeOf({ spiffeId: 'spiffe://other.org/w' }), 'SVID_TRUST_DOMAIN_MISMATCH')
  t.equal(codeOf({ spiffeId: 'spiffe://example.org.evil/w' }), 'SVID_TRUST_DOMAIN_MISMATCH')
  t.equal(codeOf({ spiffeId: 'spiffe://example.org' }), 'SPIFFE_ID_MISSING_PATH')
  t.equal(codeOf({ spiffeId: 'spiffe://example.org/a/../b' }), 'SPIFFE_ID_DOT_SEGMENT')
  t.equal(codeOf({ spiffeId: 'spiffe://example.org/a b' }), 'SPIFFE_ID_BAD_CHAR')
})

t.test('bad DNS names are refused', async (t) => {
  for (const bad of [
    '',
    'a b',
    'a..b',
    '-a.example',
    'ex\u00e4mple.org',
    'a.example.',
    '*',
    'a.*.example',
    'x'.repeat(64),
    `${'a.'.repeat(127)}a`,
  ]) {
    t.equal(codeOf({ dnsNames: [bad] }), 'SVID_DNS_NAME_INVALID', JSON.stringify(bad.slice(0, 30)))
  }
  t.equal(
    codeOf({ dnsNames: Array.from({ length: 101 }, (_, i) => `h${i}`) }),
    'SVID_DNS_NAME_INVALID',
    'too many',
  )
  t.equal(codeOf({ dnsNames: ['*.svc.local', 'a_b.example', 'localhost', 'x'.repeat(63)] }), 'ISSUED')
})

t.test('validity must be ordered and within the issuer', async (t) => {
  t.equal(codeOf({ notBefore: now, notAfter: now }), 'SVID_VALIDITY_INVALID')
  t.equal(codeOf({ notBefore: now + 10_000, notAfter: now }), 'SVID_VALIDITY_INVALID')
  t.equal(
    codeOf({ notBefore: now, notAfter: now + 400 * DAY }),
    'SVID_VALIDITY_INVALID',
    'outlives the issuer',
  )
  t.equal(codeOf({ notBefore: Number.NaN }), 'SVID_VALIDITY_INVALID')
  t.equal(codeOf({ notAfter: issuer.issuerNotAfter }), 'ISSUED', 'up to the issuer notAfter')
})

t.test('serials must be positive and at most 20 octets', async (t) => {
  t.equal(codeOf({ serial: Buffer.alloc(16) }), 'SVID_SERIAL_INVALID', 'zero')
  t.equal(codeOf({ serial: Buffer.alloc(0) }), 'SVID_SERIAL_INVALID', 'empty')
  t.equal(codeOf({ serial: Buffer.alloc(21, 1) }), 'SVID_SERIAL_INVALID', '21 octets')
  t.equal(codeOf({ serial: Buffer.alloc(20, 0xff) }), 'SVID_SERIAL_INVALID', '20 octets needing a sign byte')
  t.equal(codeOf({ serial: Buffer.alloc(20, 0x7f) }), 'ISSUED')
  const random = new Set(Array.from({ length: 200 }, () => issuer.issue(base).serialHex))
  t.equal(random.size, 200, 'random serials are unique')
  t.ok(
    [...random].every((s) => s.length <= 32 && s.length >= 24),
    'at most 16 octets (128 bits), leading zero octets stripped',
  )
  t.ok(
    [...random].some((s) => s.length === 32 && /^[89a-f]/.test(s)),
    'the top bit is random too (the DER INTEGER then carries a sign octet)',
  )
})

t.test('a malformed SPKI is refused', async (t) => {
  t.equal(codeOf({ spki: Buffer.from('not der') }), 'SVID_PUBLIC_KEY_INVALID')
  t.equal(codeOf({ spki: Buffer.concat([spki, Buffer.from([0])]) }), 'SVID_PUBLIC_KEY_INVALID')
})

t.test('unusable issuers are refused at construction', async (t) => {
  const other = await generateKeyPair('ec-p256')
  const issuerCode = (certDer: Buffer, privateKey = ca.intermediate.privateKey) => {
    try {
      new X509SvidIssuer({ certDer, privateKey })
      return 'OK'
    } catch (err) {
      return err instanceof X509SvidError ? err.code : `OTHER: ${String(err)}`
    }
  }
  t.equal(
    issuerCode(ca.intermediateDer, other.privateKey),
    'ISSUER_INVALID',
    'key does not match the certificate',
  )
  t.equal(issuerCode(Buffer.from('junk')), 'ISSUER_INVALID', 'not a certificate')
  const leaf = issuer.issue(base).der
  t.equal(issuerCode(leaf), 'ISSUER_INVALID', 'a leaf is not a CA')
  const ed = generateKeyPairSync('ed25519')
  t.equal(issuerCode(ca.intermediateDer, ed.privateKey), 'ISSUER_INVALID', 'unsupported key type')
  await t.rejects(
    issueX509SvidGeneric(ca.issuer, { ...base, spiffeId: 'spiffe://other.org/w' }),
    { code: 'SVID_TRUST_DOMAIN_MISMATCH' },
    'the generic builder enforces the same rules',
  )
})

t.test('inspectCertificate reads the issuer', async (t) => {
  const info = inspectCertificate(ca.intermediateDer)
  t.same(info.uris, ['spiffe://example.org'])
  t.equal(info.isCa, true)
  t.equal(info.subjectKeyId?.length, 20)
  t.equal(info.notAfter, issuer.issuerNotAfter)
})
