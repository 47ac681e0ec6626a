import { createPublicKey, X509Certificate } from 'node:crypto'
import t from 'tap'
import {
  type CaKeyType,
  createIntermediateCaCertificate,
  createRootCaCertificate,
  generateKeyPair,
} from '../../services/authority/ca-certs.ts'
import { inspectCertificate } from '../../services/authority/x509-svid.ts'
import { DAY, makeCa } from './fixtures/helpers.ts'

const now = Date.now()

t.test('generateKeyPair makes the requested key types', async (t) => {
  const expect: Record<CaKeyType, [string, string | number]> = {
    'ec-p256': ['ec', 'prime256v1'],
    'ec-p384': ['ec', 'secp384r1'],
    'rsa-2048': ['rsa', 2048],
    'rsa-3072': ['rsa', 3072],
  }
  for (const [kt, [type, detail]] of Object.entries(expect)) {
    const { privateKey, publicKey } = await generateKeyPair(kt as CaKeyType)
    t.equal(privateKey.type, 'private')
    t.equal(publicKey.type, 'public')
    t.equal(privateKey.asymmetricKeyType, type, kt)
    const d = privateKey.asymmetricKeyDetails!
    t.equal(type === 'ec' ? d.namedCurve : d.modulusLength, detail, kt)
    t.ok(createPublicKey(privateKey).equals(publicKey), `${kt}: halves match`)
  }
  await t.rejects(generateKeyPair('ed25519' as CaKeyType), /unsupported CA key type/)
})

t.test('root CA: self-signed, names, validity as given (Date or ms)', async (t) => {
  const keyPair = await generateKeyPair('ec-p256')
  const notBefore = new Date(now - 60_000)
  const notAfter = now + 10 * DAY + 999
  const der = await createRootCaCertificate({ trustDomain: 'example.org', keyPair, notBefore, notAfter })
  const cert = new X509Certificate(der)
  t.ok(cert.verify(keyPair.publicKey), 'self-signed')
  t.equal(cert.subject, 'O=Sigil\nCN=example.org root CA')
  t.equal(cert.issuer, cert.subject)
  t.equal(cert.subjectAltName, 'URI:spiffe://example.org')
  t.equal(cert.ca, true)
  t.equal(new Date(cert.validTo).getTime(), Math.floor(notAfter / 1000) * 1000)
  t.equal(new Date(cert.validFrom).getTime(), Math.floor(notBefore.getTime() / 1000) * 1000)
  // 16 random octets (a leading zero octet is dropped by the DER encoding, 1 time in 256).
  const serial = BigInt(`0x${cert.serialNumber}`)
  t.ok(serial > 0n && serial < 2n ** 128n, 'the serial is a positive integer of at most 128 bits')
  await t.rejects(createRootCaCertificate({ trustDomain: 'Bad.Domain', keyPair, notBefore, notAfter }), {
    code: 'TRUST_DOMAIN_INVALID',
  })
  await t.rejects(
    createRootCaCertificate({ trustDomain: 'example.org', keyPair, notBefore: now, notAfter: now }),
    /earlier/,
  )
})

t.test('intermediate CA: signed by the root, distinct random names and serials', async (t) => {
  const ca = await makeCa('ec-p384', { intermediateKeyType: 'ec-p256' })
  const root = new X509Certificate(ca.rootDer)
  const int = new X509Certificate(ca.intermediateDer)
  t.ok(int.verify(root.publicKey), 'signed by the root')
  t.ok(int.checkIssued(root), 'issuer name and AKI match the root')
  t.match(int.subject, /^O=Sigil\nCN=example\.org intermediate CA [0-9a-f]{8}$/)
  t.equal(int.issuer, root.subject)
  t.equal(int.subjectAltName, 'URI:spiffe://example.org')
  t.equal(int.ca, true)
  t.equal(int.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1')
  const second = await createIntermediateCaCertificate({
    trustDomain: 'example.org',
    subjectPublicKey: ca.intermediate.publicKey,
    issuerCertDer: ca.rootDer,
    issuerKey: ca.root.privateKey,
    notBefore: now,
    notAfter: now + DAY,
  })
  const b = new X509Certificate(second)
  t.not(b.subject, int.subject, 'random id in the CN')
  t.not(b.serialNumber, int.serialNumber)
  t.same(inspectCertificate(second).uris, ['spiffe://example.org'])
})

t.test('intermediate CA: refuses what would make a broken chain', async (t) => {
  const ca = await makeCa('ec-p256')
  const other = await generateKeyPair('ec-p256')
  const params = {
    trustDomain: 'example.org',
    subjectPublicKey: other.publicKey,
    issuerCertDer: ca.rootDer,
    issuerKey: ca.root.privateKey,
    notBefore: now,
    notAfter: now + DAY,
  }
  t.ok(await createIntermediateCaCertificate(params), 'control')
  await t.rejects(
    createIntermediateCaCertificate({ ...params, trustDomain: 'other.org' }),
    /not a CA of trust domain/,
  )
  await t.rejects(
    createIntermediateCaCertificate({ ...params, issuerKey: other.privateKey }),
    /does not match/,
  )
  await t.rejects(
    createIntermediateCaCertificate({ ...params, notAfter: now + 1000 * DAY }),
    /after its issuer/,
  )
  const leafIssuer = { ...params, issuerCertDer: Buffer.from('not a cert') }
  await t.rejects(createIntermediateCaCertificate(leafIssuer))
})
