// Real issued SVIDs checked against the X509-SVID standard by our own parsing (@peculiar/x509) and by the
// openssl binary (chain verification for TLS client and server use, and its text rendering).

import { createHash } from 'node:crypto'
import path from 'node:path'
import t from 'tap'
import type { CaKeyType } from '../../services/authority/ca-certs.ts'
import { parseCsr } from '../../services/authority/csr.ts'
import { readTlv } from '../../services/authority/der.ts'
import { x509 } from '../../services/authority/x509-lib.ts'
import { keyIdentifier, tbsOf, X509SvidIssuer } from '../../services/authority/x509-svid.ts'
import { makeCa, openssl, opensslCsr, tempDir, writePem } from './fixtures/helpers.ts'

const now = Date.now()

function verify(
  dir: string,
  purpose: 'sslclient' | 'sslserver',
  root: string,
  intermediate: string,
  leaf: string,
) {
  return openssl(
    ['verify', '-x509_strict', '-CAfile', root, '-untrusted', intermediate, '-purpose', purpose, leaf],
    {
      cwd: dir,
    },
  )
}

function text(file: string): string {
  const r = openssl(['x509', '-in', file, '-noout', '-text'])
  if (r.status !== 0) throw new Error(r.stderr)
  return r.stdout
}

/** The lines of an extension in `openssl x509 -text` output: its header and its value line. */
function extensionBlock(out: string, name: string): string {
  const lines = out.split('\n')
  const i = lines.findIndex((l) => l.trim().startsWith(`X509v3 ${name}`))
  return i === -1 ? '' : `${lines[i]!.trim()}\n${lines[i + 1]!.trim()}`
}

for (const caType of ['ec-p256', 'ec-p384', 'rsa-2048'] as CaKeyType[]) {
  t.test(`${caType} CA: issued SVIDs meet the X509-SVID standard`, async (t) => {
    const { dir, cleanup } = tempDir()
    t.teardown(cleanup)
    const ca = await makeCa(caType)
    const issuer = new X509SvidIssuer(ca.issuer)
    const rootPem = writePem(dir, 'root.pem', ca.rootDer)
    const intPem = writePem(dir, 'intermediate.pem', ca.intermediateDer)

    const csr = parseCsr(opensslCsr(caType === 'rsa-2048' ? 'rsa-2048' : 'ec-p256'))
    const notAfter = now + 2 * 3_600_000 + 789
    const spiffeId = 'spiffe://example.org/ns/payments/sa/api'
    const dnsNames = ['api.payments.svc', 'api.example.org']
    const svid = issuer.issue({ spki: csr.spki, spiffeId, dnsNames, notBefore: now - 60_000, notAfter })
    const leafPem = writePem(dir, 'leaf.pem', svid.der)

    // openssl: chain verification for both TLS roles, strict mode.
    for (const purpose of ['sslclient', 'sslserver'] as const) {
      const r = verify(dir, purpose, rootPem, intPem, leafPem)
      t.equal(r.status, 0, `openssl verify -purpose ${purpose}: ${r.stdout.trim()} ${r.stderr.trim()}`)
      t.match(r.stdout, /leaf\.pem: OK/)
    }

    // openssl: text rendering of the leaf.
    const leafText = text(leafPem)
    t.match(leafText, /Version: 3 \(0x2\)/)
    t.equal(leafText.match(/URI:/g)?.length, 1, 'exactly one URI SAN')
    t.match(leafText, new RegExp(`URI:${spiffeId.replace(/[/.]/g, '\\$&')}(,|\\n)`))
    for (const dns of dnsNames) t.match(leafText, `DNS:${dns}`, `DNS SAN ${dns}`)
    t.match(extensionBlock(leafText, 'Basic Constraints'), /critical\nCA:FALSE/)
    const ku = extensionBlock(leafText, 'Key Usage')
    t.match(ku, /^X509v3 Key Usage: critical\n/, 'key usage is critical')
    t.match(ku, /Digital Signature/)
    t.notMatch(ku, /Certificate Sign/)
    t.notMatch(ku, /CRL Sign/)
    t.match(
      extensionBlock(leafText, 'Extended Key Usage'),
      /TLS Web Server Authentication, TLS Web Client Authentication/,
    )
    t.match(leafText, /Subject: O = Sigil\n/)
    t.match(leafText, /X509v3 Subject Key Identifier/)
    t.match(leafText, /X509v3 Authority Key Identifier/)
    const serial = openssl(['x509', '-in', leafPem, '-noout', '-serial']).stdout.trim().replace('serial=', '')
    // 16 random octets: 32 hex digits, fewer when the value happens to start with zero octets.
    t.ok(serial.length <= 32 && serial.length >= 24, `128-bit random serial (${serial.length / 2} octets)`)
    t.equal(serial.toLowerCase(), svid.serialHex)
    const end = openssl(['x509', '-in', leafPem, '-noout', '-enddate']).stdout.trim()
    t.equal(
      new Date(end.replace('notAfter=', '')).getTime(),
      Math.floor(notAfter / 1000) * 1000,
      'notAfter as requested',
    )

    // openssl: the signing certificates are CAs allowed to sign certificates.
    for (const [what, file, pathlen] of [
      ['root', rootPem, false],
      ['intermediate', intPem, true],
    ] as const) {
      const out = text(file)
      t.match(
        extensionBlock(out, 'Basic Constraints'),
        pathlen ? /critical\nCA:TRUE, pathlen:0/ : /critical\nCA:TRUE$/,
        what,
      )
      t.match(extensionBlock(out, 'Key Usage'), /critical\n.*Certificate Sign.*CRL Sign/, `${what} key usage`)
      t.match(out, 'URI:spiffe://example.org\n', `${what} carries the trust domain ID`)
      t.match(out, /X509v3 Subject Key Identifier/)
    }

    // Our own parsing of the same leaf.
    const cert = new x509.X509Certificate(svid.der)
    t.equal(cert.subject, 'O=Sigil')
    t.equal(
      cert.issuer,
      new x509.X509Certificate(ca.intermediateDer).subject,
      'issuer name is the intermediate subject',
    )
    t.equal(cert.notAfter.getTime(), Math.floor(notAfter / 1000) * 1000)
    t.equal(cert.notBefore.getTime(), Math.floor((now - 60_000) / 1000) * 1000)
    t.equal(cert.serialNumber, svid.serialHex)
    t.equal(
      Buffer.from(cert.publicKey.rawData).toString('hex'),
      csr.spki.toString('hex'),
      'SPKI copied from the CSR',
    )
    const tbs = tbsOf(svid.der)
    t.equal(
      tbs.subarray(readTlv(tbs, 0).contentStart, readTlv(tbs, 0).contentStart + 5).toString('hex'),
      'a003020102',
      'v3',
    )

    const bc = cert.getExtension(x509.BasicConstraintsExtension)!
    t.equal(bc.ca, false)
    t.equal(bc.critical, true)
    const kuExt = cert.getExtension(x509.KeyUsagesExtension)!
    t.equal(kuExt.critical, true)
    t.equal(
      kuExt.usages,
      x509.KeyUsageFlags.digitalSignature |
        x509.KeyUsageFlags.keyEncipherment |
        x509.KeyUsageFlags.keyAgreement,
    )
    t.equal(kuExt.usages & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign), 0)
    t.same(cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages, [
      x509.ExtendedKeyUsage.serverAuth,
      x509.ExtendedKeyUsage.clientAuth,
    ])
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension)!
    t.same(
      san.names.items.filter((n) => n.type === 'url').map((n) => n.value),
      [spiffeId],
    )
    t.same(
      san.names.items.filter((n) => n.type === 'dns').map((n) => n.value),
      dnsNames,
    )
    const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)!
    const spkiBits = csr.spki.subarray(csr.spki.length - (csr.keyType === 'rsa' ? 270 : 65))
    t.equal(ski.keyId, createHash('sha1').update(spkiBits).digest('hex'), 'SKI is SHA-1 of the key bits')
    t.equal(ski.keyId, keyIdentifier(csr.spki).toString('hex'))
    const intCert = new x509.X509Certificate(ca.intermediateDer)
    const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension)!
    t.equal(
      aki.keyId,
      intCert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
      'AKI is the issuer SKI',
    )
    t.ok(await cert.verify({ publicKey: intCert.publicKey, signatureOnly: true }), 'signature verifies')

    // Our own parsing of the signing certificates.
    for (const der of [ca.rootDer, ca.intermediateDer]) {
      const c = new x509.X509Certificate(der)
      const cbc = c.getExtension(x509.BasicConstraintsExtension)!
      t.equal(cbc.ca, true)
      t.equal(cbc.critical, true)
      const cku = c.getExtension(x509.KeyUsagesExtension)!
      t.ok(cku.critical && cku.usages & x509.KeyUsageFlags.keyCertSign, 'signing cert has keyCertSign')
      // 16 random octets: a leading zero octet is dropped by the DER encoding (1 time in 256).
      const caSerial = BigInt(`0x${c.serialNumber}`)
      t.ok(
        caSerial > 0n && caSerial < 2n ** 128n,
        'CA serial is a positive random integer of at most 128 bits',
      )
    }
    t.equal(intCert.getExtension(x509.BasicConstraintsExtension)!.pathLength, 0)
    t.match(intCert.subject, /^O=Sigil, CN=example\.org intermediate CA [0-9a-f]{8}$/)
    t.equal(new x509.X509Certificate(ca.rootDer).subject, 'O=Sigil, CN=example.org root CA')
  })
}

t.test('no DNS SANs unless asked', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const ca = await makeCa('ec-p256')
  const csr = parseCsr(opensslCsr('ec-p256'))
  const svid = new X509SvidIssuer(ca.issuer).issue({
    spki: csr.spki,
    spiffeId: 'spiffe://example.org/x',
    dnsNames: [],
    notBefore: now,
    notAfter: now + 60_000,
  })
  const out = text(writePem(dir, 'leaf.pem', svid.der))
  t.notMatch(out, /DNS:/)
  t.match(out, /X509v3 Subject Alternative Name: \n\s+URI:spiffe:\/\/example.org\/x\n/)
})

t.test('a leaf signed by an unrelated intermediate fails openssl verify', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const ours = await makeCa('ec-p256')
  const theirs = await makeCa('ec-p256')
  const csr = parseCsr(opensslCsr('ec-p256'))
  const spec = {
    spki: csr.spki,
    spiffeId: 'spiffe://example.org/x',
    dnsNames: [],
    notBefore: now - 60_000,
    notAfter: now + 60_000,
  }
  const rootPem = writePem(dir, 'root.pem', ours.rootDer)
  const intPem = writePem(dir, 'intermediate.pem', ours.intermediateDer)
  const otherIntPem = writePem(dir, 'other-intermediate.pem', theirs.intermediateDer)
  const goodPem = writePem(dir, 'good.pem', new X509SvidIssuer(ours.issuer).issue(spec).der)
  const foreignPem = writePem(dir, 'foreign.pem', new X509SvidIssuer(theirs.issuer).issue(spec).der)

  t.equal(verify(dir, 'sslclient', rootPem, intPem, goodPem).status, 0, 'control: our own leaf verifies')
  const r1 = verify(dir, 'sslclient', rootPem, intPem, foreignPem)
  t.not(r1.status, 0, 'foreign leaf with our intermediate fails')
  t.match(r1.stdout + r1.stderr, /unable to get local issuer certificate|error/)
  const r2 = verify(dir, 'sslclient', rootPem, otherIntPem, foreignPem)
  t.not(r2.status, 0, 'foreign leaf with its own intermediate, under our root, fails')
  t.match(path.basename(foreignPem), 'foreign.pem')
})

t.test('mixed key types: signature algorithm follows the issuer key', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const ca = await makeCa('rsa-2048', { intermediateKeyType: 'ec-p384', trustDomain: 'mixed_td.example' })
  const rootPem = writePem(dir, 'root.pem', ca.rootDer)
  const intPem = writePem(dir, 'intermediate.pem', ca.intermediateDer)
  t.match(text(intPem), /Signature Algorithm: sha256WithRSAEncryption/, 'intermediate signed by the RSA root')
  const csr = parseCsr(opensslCsr('rsa-2048'))
  const svid = new X509SvidIssuer(ca.issuer).issue({
    spki: csr.spki,
    spiffeId: 'spiffe://mixed_td.example/w',
    dnsNames: [],
    notBefore: now - 60_000,
    notAfter: now + 60_000,
  })
  const leafPem = writePem(dir, 'leaf.pem', svid.der)
  t.match(text(leafPem), /Signature Algorithm: ecdsa-with-SHA384/, 'leaf signed by the P-384 intermediate')
  t.equal(verify(dir, 'sslserver', rootPem, intPem, leafPem).status, 0, 'chain verifies')
  t.match(text(rootPem), /Subject: O = Sigil, CN = mixed_td.example root CA/, '"_" in the CN (UTF8String)')
})
