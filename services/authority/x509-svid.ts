// X509-SVID issuance (spiffe/spiffe standards/X509-SVID.md). The fast issuer precomputes everything that
// depends only on the issuer and, per SVID, encodes just serial, validity, key, key identifier and SAN
// before signing with node:crypto. issueX509SvidGeneric builds the same certificate with @peculiar/x509;
// the differential test holds the two to byte equality of the TBSCertificate.

import { createHash, createPublicKey, type KeyObject, randomBytes, sign, webcrypto } from 'node:crypto'
import {
  contextTag,
  decodeTime,
  encodeBitString,
  encodeOctetString,
  encodeOid,
  encodeSequence,
  encodeTime,
  encodeTlv,
  encodeUnsignedInteger,
  expectTlv,
  readChildren,
  readTlv,
  TAG,
  tlvBytes,
  tlvContent,
} from './der.ts'
import { parseSpiffeId, type SpiffeId, SpiffeIdError } from './spiffe-id.ts'

export type X509SvidErrorCode =
  | 'ISSUER_INVALID'
  | 'SVID_TRUST_DOMAIN_MISMATCH'
  | 'SVID_DNS_NAME_INVALID'
  | 'SVID_VALIDITY_INVALID'
  | 'SVID_SERIAL_INVALID'
  | 'SVID_PUBLIC_KEY_INVALID'

export class X509SvidError extends Error {
  override readonly name = 'X509SvidError'
  readonly code: X509SvidErrorCode

  constructor(code: X509SvidErrorCode, message: string) {
    super(message)
    this.code = code
  }
}

export interface SvidIssuerKey {
  certDer: Buffer
  privateKey: KeyObject
}

export interface SvidSpec {
  /** SubjectPublicKeyInfo DER, copied verbatim into the certificate. */
  spki: Buffer
  spiffeId: string
  dnsNames: string[]
  /** Milliseconds since the epoch; truncated to whole seconds. */
  notBefore: number
  notAfter: number
  /** Serial magnitude (big-endian, positive). Default: randomSerial() (16 random octets). */
  serial?: Buffer
}

export interface IssuedSvid {
  der: Buffer
  /** Lowercase hex of the serial number's value, without a sign byte. */
  serialHex: string
}

export const SVID_SUBJECT_ORGANIZATION = 'Sigil'
export const MAX_DNS_NAMES = 100

// --- Signature algorithms ---------------------------------------------------------------------------

export interface SignatureAlgorithm {
  /** node:crypto digest name. */
  hash: 'sha256' | 'sha384'
  /** DER AlgorithmIdentifier used in both TBSCertificate.signature and Certificate.signatureAlgorithm. */
  algorithmIdentifier: Buffer
  /** WebCrypto parameters for importing the key and signing (for @peculiar/x509). */
  importParams: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams
  signParams: webcrypto.EcdsaParams | webcrypto.Algorithm
}

const NULL = Buffer.from([0x05, 0x00])

/** The signature algorithm a CA uses is fixed by its key type: P-256/SHA-256, P-384/SHA-384, RSA/SHA-256. */
export function signatureAlgorithmFor(privateKey: KeyObject): SignatureAlgorithm {
  const type = privateKey.asymmetricKeyType
  const curve = privateKey.asymmetricKeyDetails?.namedCurve
  if (type === 'ec' && curve === 'prime256v1') {
    return {
      hash: 'sha256',
      algorithmIdentifier: encodeSequence(encodeOid('1.2.840.10045.4.3.2')),
      importParams: { name: 'ECDSA', namedCurve: 'P-256' },
      signParams: { name: 'ECDSA', hash: 'SHA-256' },
    }
  }
  if (type === 'ec' && curve === 'secp384r1') {
    return {
      hash: 'sha384',
      algorithmIdentifier: encodeSequence(encodeOid('1.2.840.10045.4.3.3')),
      importParams: { name: 'ECDSA', namedCurve: 'P-384' },
      signParams: { name: 'ECDSA', hash: 'SHA-384' },
    }
  }
  if (type === 'rsa') {
    return {
      hash: 'sha256',
      algorithmIdentifier: encodeSequence(encodeOid('1.2.840.113549.1.1.11'), NULL),
      importParams: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      signParams: { name: 'RSASSA-PKCS1-v1_5' },
    }
  }
  throw new X509SvidError(
    'ISSUER_INVALID',
    `CA key type ${type}${curve ? ` (${curve})` : ''} is not supported; use EC P-256, EC P-384 or RSA.`,
  )
}

/** A WebCrypto signing key for libraries that need one. The key material stays in memory. */
export async function toWebCryptoSigningKey(privateKey: KeyObject): Promise<webcrypto.CryptoKey> {
  const alg = signatureAlgorithmFor(privateKey)
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' })
  try {
    return await webcrypto.subtle.importKey('pkcs8', pkcs8, alg.importParams, false, ['sign'])
  } finally {
    pkcs8.fill(0)
  }
}

// --- Reading certificates ---------------------------------------------------------------------------

export interface CertificateInfo {
  tbs: Buffer
  /** Subject Name, verbatim. */
  subjectDer: Buffer
  spkiDer: Buffer
  notBefore: number
  notAfter: number
  /** SubjectKeyIdentifier extension value, if present. */
  subjectKeyId?: Buffer
  uris: string[]
  isCa: boolean
}

const OID_SKI = encodeOid('2.5.29.14').toString('latin1')
const OID_SAN = encodeOid('2.5.29.17').toString('latin1')
const OID_BC = encodeOid('2.5.29.19').toString('latin1')

/** Reads the fields a CA needs from a DER certificate. Throws on structural errors. */
export function inspectCertificate(certDer: Uint8Array): CertificateInfo {
  const cert = expectTlv(certDer, 0, certDer.length, TAG.SEQUENCE, 'Certificate')
  if (cert.end !== certDer.length) throw new Error('certificate has trailing bytes')
  const [tbsTlv] = readChildren(certDer, cert)
  if (!tbsTlv || tbsTlv.tag !== TAG.SEQUENCE) throw new Error('certificate has no TBSCertificate')
  const fields = readChildren(certDer, tbsTlv)
  let i = fields[0]?.tag === contextTag(0, true) ? 1 : 0
  const [, , , validity, subject, spki] = fields.slice(i)
  i += 6
  if (!validity || !subject || !spki || subject.tag !== TAG.SEQUENCE || spki.tag !== TAG.SEQUENCE) {
    throw new Error('TBSCertificate is malformed')
  }
  const [nb, na] = readChildren(certDer, validity)
  const info: CertificateInfo = {
    tbs: Buffer.from(tlvBytes(certDer, tbsTlv)),
    subjectDer: Buffer.from(tlvBytes(certDer, subject)),
    spkiDer: Buffer.from(tlvBytes(certDer, spki)),
    notBefore: decodeTime(certDer, nb!),
    notAfter: decodeTime(certDer, na!),
    uris: [],
    isCa: false,
  }
  const extsWrapper = fields.slice(i).find((f) => f.tag === contextTag(3, true))
  if (!extsWrapper) return info
  const exts = readTlv(certDer, extsWrapper.contentStart, extsWrapper.contentEnd)
  for (const ext of readChildren(certDer, exts)) {
    const parts = readChildren(certDer, ext)
    const oid = Buffer.from(tlvBytes(certDer, parts[0]!)).toString('latin1')
    const value = parts[parts.length - 1]!
    const inner = readTlv(certDer, value.contentStart, value.contentEnd)
    if (oid === OID_SKI) {
      info.subjectKeyId = Buffer.from(tlvContent(certDer, inner))
    } else if (oid === OID_SAN) {
      for (const gn of readChildren(certDer, inner)) {
        if (gn.tag === contextTag(6, false))
          info.uris.push(Buffer.from(tlvContent(certDer, gn)).toString('latin1'))
      }
    } else if (oid === OID_BC) {
      const first = readChildren(certDer, inner)[0]
      info.isCa = first?.tag === TAG.BOOLEAN && certDer[first.contentStart] !== 0
    }
  }
  return info
}

/** The TBSCertificate bytes of a DER certificate. */
export function tbsOf(certDer: Uint8Array): Buffer {
  const cert = readTlv(certDer, 0)
  const tbs = readTlv(certDer, cert.contentStart, cert.contentEnd)
  return Buffer.from(tlvBytes(certDer, tbs))
}

// --- Shared validation ------------------------------------------------------------------------------

interface IssuerContext {
  info: CertificateInfo
  trustDomain: string
  alg: SignatureAlgorithm
  authorityKeyId: Buffer
}

/** SHA-1 of the subjectPublicKey BIT STRING value (RFC 5280 4.2.1.2, method 1). */
export function keyIdentifier(spki: Uint8Array): Buffer {
  const seq = expectTlv(spki, 0, spki.length, TAG.SEQUENCE, 'SubjectPublicKeyInfo')
  if (seq.end !== spki.length) throw new Error('SubjectPublicKeyInfo has trailing bytes')
  const parts = readChildren(spki, seq)
  const bits = parts[1]
  if (parts.length !== 2 || parts[0]!.tag !== TAG.SEQUENCE || bits?.tag !== TAG.BIT_STRING) {
    throw new Error('SubjectPublicKeyInfo is malformed')
  }
  if (bits.contentEnd - bits.contentStart < 2 || spki[bits.contentStart] !== 0) {
    throw new Error('subjectPublicKey BIT STRING is malformed')
  }
  return createHash('sha1')
    .update(spki.subarray(bits.contentStart + 1, bits.contentEnd))
    .digest()
}

function issuerContext(issuer: SvidIssuerKey): IssuerContext {
  let info: CertificateInfo
  try {
    info = inspectCertificate(issuer.certDer)
  } catch (err) {
    throw new X509SvidError('ISSUER_INVALID', `issuer certificate is malformed: ${(err as Error).message}`)
  }
  if (!info.isCa)
    throw new X509SvidError('ISSUER_INVALID', 'issuer certificate is not a CA (basicConstraints cA)')
  const alg = signatureAlgorithmFor(issuer.privateKey)
  const certKey = createPublicKey({ key: info.spkiDer, format: 'der', type: 'spki' })
  if (!certKey.equals(createPublicKey(issuer.privateKey))) {
    throw new X509SvidError('ISSUER_INVALID', 'issuer private key does not match the issuer certificate')
  }
  const tds = info.uris.filter((u) => u.startsWith('spiffe://'))
  let id: SpiffeId | undefined
  try {
    id = tds.length === 1 ? parseSpiffeId(tds[0]!) : undefined
  } catch (err) {
    if (!(err instanceof SpiffeIdError)) throw err
  }
  if (id?.path !== '') {
    throw new X509SvidError(
      'ISSUER_INVALID',
      'issuer certificate must carry exactly one URI SAN "spiffe://<td>"',
    )
  }
  // An issuer without SKI gets the AKI its SKI would have had under method 1.
  const authorityKeyId = info.subjectKeyId ?? keyIdentifier(info.spkiDer)
  return { info, trustDomain: id.trustDomain, alg, authorityKeyId }
}

/**
 * A random 128-bit serial number magnitude: 16 random octets. The DER INTEGER gets a 0x00 sign octet
 * when the top bit is set (encodeUnsignedInteger), so the serial is always positive.
 */
export function randomSerial(): Buffer {
  for (;;) {
    const serial = randomBytes(16)
    if (serial.some((b) => b !== 0)) return serial
  }
}

const DNS_LABEL = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?'
const DNS_NAME = new RegExp(`^(?:\\*\\.)?${DNS_LABEL}(?:\\.${DNS_LABEL})*$`)

interface CheckedSpec {
  notBefore: number
  notAfter: number
  serial: Buffer
  serialHex: string
}

function checkSpec(ctx: IssuerContext, spec: SvidSpec): CheckedSpec {
  const id = parseSpiffeId(spec.spiffeId, { requireWorkloadPath: true })
  if (id.trustDomain !== ctx.trustDomain) {
    throw new X509SvidError(
      'SVID_TRUST_DOMAIN_MISMATCH',
      `SPIFFE ID trust domain ${JSON.stringify(id.trustDomain)} does not match the issuer's ` +
        `${JSON.stringify(ctx.trustDomain)}; an issuer only signs IDs of its own trust domain.`,
    )
  }
  if (!Array.isArray(spec.dnsNames) || spec.dnsNames.length > MAX_DNS_NAMES) {
    throw new X509SvidError('SVID_DNS_NAME_INVALID', `at most ${MAX_DNS_NAMES} DNS names are allowed`)
  }
  for (const name of spec.dnsNames) {
    if (typeof name !== 'string' || name.length > 253 || !DNS_NAME.test(name)) {
      throw new X509SvidError(
        'SVID_DNS_NAME_INVALID',
        `DNS name ${JSON.stringify(String(name).slice(0, 300))} is not a valid DNS name ` +
          '(ASCII labels of letters, digits, "-" and "_", optionally prefixed with "*.")',
      )
    }
  }
  const notBefore = Math.floor(spec.notBefore / 1000) * 1000
  const notAfter = Math.floor(spec.notAfter / 1000) * 1000
  if (!Number.isFinite(notBefore) || !Number.isFinite(notAfter) || notBefore >= notAfter) {
    throw new X509SvidError(
      'SVID_VALIDITY_INVALID',
      'notBefore must be earlier than notAfter (whole seconds)',
    )
  }
  if (notAfter > ctx.info.notAfter) {
    throw new X509SvidError(
      'SVID_VALIDITY_INVALID',
      `notAfter ${new Date(notAfter).toISOString()} is after the issuer's notAfter ` +
        `${new Date(ctx.info.notAfter).toISOString()}; shorten the SVID lifetime or rotate the issuer.`,
    )
  }
  const raw = spec.serial ?? randomSerial()
  let i = 0
  while (i < raw.length && raw[i] === 0) i++
  const serial = raw.subarray(i)
  if (serial.length === 0 || serial.length > 20 || (serial.length === 20 && serial[0]! & 0x80)) {
    throw new X509SvidError('SVID_SERIAL_INVALID', 'serial must be a positive integer of at most 20 octets')
  }
  return { notBefore, notAfter, serial, serialHex: serial.toString('hex') }
}

function checkedKeyIdentifier(spki: Buffer): Buffer {
  try {
    return keyIdentifier(spki)
  } catch (err) {
    throw new X509SvidError(
      'SVID_PUBLIC_KEY_INVALID',
      `SVID public key is malformed: ${(err as Error).message}`,
    )
  }
}

// --- Fast issuer ------------------------------------------------------------------------------------

const VERSION_V3 = Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02])
const CRITICAL = Buffer.from([0x01, 0x01, 0xff])

function extension(oid: string, critical: boolean, value: Uint8Array): Buffer {
  return critical
    ? encodeSequence(encodeOid(oid), CRITICAL, encodeOctetString(value))
    : encodeSequence(encodeOid(oid), encodeOctetString(value))
}

// digitalSignature(0) | keyEncipherment(2) | keyAgreement(4): 0b10101000, three unused trailing bits.
const LEAF_KEY_USAGE = encodeBitString(Buffer.from([0xa8]), 3)
const LEAF_EXTENSIONS_FIXED = Buffer.concat([
  extension('2.5.29.19', true, encodeSequence()),
  extension('2.5.29.15', true, LEAF_KEY_USAGE),
  extension(
    '2.5.29.37',
    false,
    encodeSequence(encodeOid('1.3.6.1.5.5.7.3.1'), encodeOid('1.3.6.1.5.5.7.3.2')),
  ),
])
const SVID_SUBJECT = encodeSequence(
  encodeTlv(
    TAG.SET,
    encodeSequence(encodeOid('2.5.4.10'), encodeTlv(TAG.UTF8_STRING, Buffer.from(SVID_SUBJECT_ORGANIZATION))),
  ),
)
const OID_SKI_TLV = encodeOid('2.5.29.14')
const OID_SAN_TLV = encodeOid('2.5.29.17')

function sanExtension(spiffeId: string, dnsNames: string[]): Buffer {
  const names = [encodeTlv(contextTag(6, false), Buffer.from(spiffeId, 'latin1'))]
  for (const dns of dnsNames) names.push(encodeTlv(contextTag(2, false), Buffer.from(dns, 'latin1')))
  return encodeSequence(OID_SAN_TLV, encodeOctetString(encodeSequence(...names)))
}

export class X509SvidIssuer {
  readonly trustDomain: string
  readonly issuerNotAfter: number
  readonly #ctx: IssuerContext
  readonly #privateKey: KeyObject
  // TBS pieces between the per-SVID fields, concatenated once.
  readonly #afterSerial: Buffer
  readonly #afterValidity: Buffer
  readonly #akiExtension: Buffer

  constructor(issuer: SvidIssuerKey) {
    this.#ctx = issuerContext(issuer)
    this.#privateKey = issuer.privateKey
    this.trustDomain = this.#ctx.trustDomain
    this.issuerNotAfter = this.#ctx.info.notAfter
    this.#afterSerial = Buffer.concat([this.#ctx.alg.algorithmIdentifier, this.#ctx.info.subjectDer])
    this.#afterValidity = SVID_SUBJECT
    this.#akiExtension = extension(
      '2.5.29.35',
      false,
      encodeSequence(encodeTlv(contextTag(0, false), this.#ctx.authorityKeyId)),
    )
  }

  issue(spec: SvidSpec): IssuedSvid {
    const checked = checkSpec(this.#ctx, spec)
    const ski = checkedKeyIdentifier(spec.spki)
    const extensions = encodeTlv(
      contextTag(3, true),
      encodeSequence(
        LEAF_EXTENSIONS_FIXED,
        encodeSequence(OID_SKI_TLV, encodeOctetString(encodeOctetString(ski))),
        this.#akiExtension,
        sanExtension(spec.spiffeId, spec.dnsNames),
      ),
    )
    const tbs = encodeSequence(
      VERSION_V3,
      encodeUnsignedInteger(checked.serial),
      this.#afterSerial,
      encodeSequence(encodeTime(checked.notBefore), encodeTime(checked.notAfter)),
      this.#afterValidity,
      spec.spki,
      extensions,
    )
    const signature = sign(this.#ctx.alg.hash, tbs, this.#privateKey)
    const der = encodeSequence(tbs, this.#ctx.alg.algorithmIdentifier, encodeBitString(signature))
    return { der, serialHex: checked.serialHex }
  }
}

// --- Generic reference builder ----------------------------------------------------------------------

/**
 * Same certificate as X509SvidIssuer.issue, built with @peculiar/x509. Slow; for tests and reference.
 * The library is imported lazily so that signing workers never load it.
 */
export async function issueX509SvidGeneric(issuer: SvidIssuerKey, spec: SvidSpec): Promise<IssuedSvid> {
  const { x509 } = await import('./x509-lib.ts')
  const ctx = issuerContext(issuer)
  const checked = checkSpec(ctx, spec)
  const ski = checkedKeyIdentifier(spec.spki)
  const signingKey = await toWebCryptoSigningKey(issuer.privateKey)
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: checked.serialHex,
    subject: new x509.Name([{ O: [{ utf8String: SVID_SUBJECT_ORGANIZATION }] }]),
    issuer: new x509.Name(ctx.info.subjectDer),
    notBefore: new Date(checked.notBefore),
    notAfter: new Date(checked.notAfter),
    publicKey: spec.spki,
    signingKey: signingKey as never,
    signingAlgorithm: ctx.alg.signParams,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature |
          x509.KeyUsageFlags.keyEncipherment |
          x509.KeyUsageFlags.keyAgreement,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(
        [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
      new x509.SubjectKeyIdentifierExtension(ski.toString('hex'), false),
      new x509.AuthorityKeyIdentifierExtension(ctx.authorityKeyId.toString('hex'), false),
      new x509.SubjectAlternativeNameExtension(
        [
          { type: 'url', value: spec.spiffeId },
          ...spec.dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ],
        false,
      ),
    ],
  })
  return { der: Buffer.from(cert.rawData), serialHex: checked.serialHex }
}
