// Root and intermediate CA certificates. Not on the hot path: built with @peculiar/x509 (via x509-lib.ts)
// over node's WebCrypto. Keys are node:crypto KeyObjects; private keys are converted to non-extractable CryptoKeys in
// memory only for the duration of a signature.

import {
  createPublicKey,
  generateKeyPair as generateKeyPairCb,
  type KeyObject,
  randomBytes,
} from 'node:crypto'
import { promisify } from 'node:util'
import { validateTrustDomainName } from './spiffe-id.ts'
import { x509 } from './x509-lib.ts'
import {
  inspectCertificate,
  keyIdentifier,
  randomSerial,
  type SignatureAlgorithm,
  signatureAlgorithmFor,
  toWebCryptoSigningKey,
} from './x509-svid.ts'

export type CaKeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072'

export interface CaKeyPair {
  privateKey: KeyObject
  publicKey: KeyObject
}

export interface RootCaParams {
  trustDomain: string
  keyPair: CaKeyPair
  /** Date or milliseconds since the epoch; truncated to whole seconds. */
  notBefore: Date | number
  notAfter: Date | number
}

export interface IntermediateCaParams {
  trustDomain: string
  subjectPublicKey: KeyObject
  issuerCertDer: Buffer
  issuerKey: KeyObject
  notBefore: Date | number
  notAfter: Date | number
}

export const CA_ORGANIZATION = 'Sigil'

const generate = promisify(generateKeyPairCb)

export async function generateKeyPair(keyType: CaKeyType): Promise<CaKeyPair> {
  switch (keyType) {
    case 'ec-p256':
      return generate('ec', { namedCurve: 'prime256v1' })
    case 'ec-p384':
      return generate('ec', { namedCurve: 'secp384r1' })
    case 'rsa-2048':
      return generate('rsa', { modulusLength: 2048, publicExponent: 0x10001 })
    case 'rsa-3072':
      return generate('rsa', { modulusLength: 3072, publicExponent: 0x10001 })
    default:
      throw new Error(`unsupported CA key type ${JSON.stringify(keyType)}`)
  }
}

function seconds(t: Date | number, what: string): Date {
  const ms = t instanceof Date ? t.getTime() : t
  if (!Number.isFinite(ms)) throw new Error(`${what} is not a valid time`)
  return new Date(Math.floor(ms / 1000) * 1000)
}

function validity(notBefore: Date | number, notAfter: Date | number): { notBefore: Date; notAfter: Date } {
  const nb = seconds(notBefore, 'notBefore')
  const na = seconds(notAfter, 'notAfter')
  if (nb.getTime() >= na.getTime()) throw new Error('notBefore must be earlier than notAfter')
  return { notBefore: nb, notAfter: na }
}

// Every attribute is a UTF8String (RFC 5280 4.1.2.6), given as an object so nothing parses a DN string:
// `_` is valid in a trust domain but not in a PrintableString.
function caName(commonName: string): x509.Name {
  return new x509.Name([{ O: [{ utf8String: CA_ORGANIZATION }] }, { CN: [{ utf8String: commonName }] }])
}

function spkiOf(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' })
}

async function sign(
  alg: SignatureAlgorithm,
  privateKey: KeyObject,
  params: Omit<x509.X509CertificateCreateWithKeyParams, 'signingKey' | 'signingAlgorithm' | 'serialNumber'>,
): Promise<Buffer> {
  const signingKey = await toWebCryptoSigningKey(privateKey)
  const cert = await x509.X509CertificateGenerator.create({
    ...params,
    serialNumber: randomSerial().toString('hex'),
    signingKey: signingKey as never,
    signingAlgorithm: alg.signParams,
  })
  return Buffer.from(cert.rawData)
}

/** A self-signed root CA: `O=Sigil, CN=<td> root CA`, URI SAN `spiffe://<td>`. */
export async function createRootCaCertificate(params: RootCaParams): Promise<Buffer> {
  validateTrustDomainName(params.trustDomain)
  const { privateKey, publicKey } = params.keyPair
  const alg = signatureAlgorithmFor(privateKey)
  const spki = spkiOf(publicKey)
  const keyId = keyIdentifier(spki).toString('hex')
  const name = caName(`${params.trustDomain} root CA`)
  return sign(alg, privateKey, {
    subject: name,
    issuer: name,
    ...validity(params.notBefore, params.notAfter),
    publicKey: spki,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      new x509.SubjectKeyIdentifierExtension(keyId, false),
      new x509.AuthorityKeyIdentifierExtension(keyId, false),
      new x509.SubjectAlternativeNameExtension(
        [{ type: 'url', value: `spiffe://${params.trustDomain}` }],
        false,
      ),
    ],
  })
}

/**
 * An intermediate CA (pathLen 0) for `trustDomain`, signed by `issuerCertDer`/`issuerKey`, which must be a
 * CA of the same trust domain. Subject `O=Sigil, CN=<td> intermediate CA <random id>`.
 */
export async function createIntermediateCaCertificate(params: IntermediateCaParams): Promise<Buffer> {
  validateTrustDomainName(params.trustDomain)
  const issuer = inspectCertificate(params.issuerCertDer)
  if (!issuer.isCa) throw new Error('issuer certificate is not a CA')
  const certKey = createPublicKey({ key: issuer.spkiDer, format: 'der', type: 'spki' })
  if (!certKey.equals(createPublicKey(params.issuerKey))) {
    throw new Error('issuer key does not match the issuer certificate')
  }
  if (!issuer.uris.includes(`spiffe://${params.trustDomain}`)) {
    throw new Error(`issuer certificate is not a CA of trust domain ${JSON.stringify(params.trustDomain)}`)
  }
  const times = validity(params.notBefore, params.notAfter)
  if (times.notAfter.getTime() > issuer.notAfter) {
    throw new Error('intermediate CA notAfter is after its issuer notAfter')
  }
  const alg = signatureAlgorithmFor(params.issuerKey)
  // The subject key must itself be able to sign SVIDs.
  signatureAlgorithmFor(params.subjectPublicKey)
  const spki = spkiOf(params.subjectPublicKey)
  const authorityKeyId = issuer.subjectKeyId ?? keyIdentifier(issuer.spkiDer)
  return sign(alg, params.issuerKey, {
    subject: caName(`${params.trustDomain} intermediate CA ${randomBytes(4).toString('hex')}`),
    issuer: new x509.Name(issuer.subjectDer),
    ...times,
    publicKey: spki,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.SubjectKeyIdentifierExtension(keyIdentifier(spki).toString('hex'), false),
      new x509.AuthorityKeyIdentifierExtension(authorityKeyId.toString('hex'), false),
      new x509.SubjectAlternativeNameExtension(
        [{ type: 'url', value: `spiffe://${params.trustDomain}` }],
        false,
      ),
    ],
  })
}
