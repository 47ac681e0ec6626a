// PKCS#10 (RFC 2986) parsing and proof-of-possession check for the SVID hot path. Only the public key is
// taken from a CSR: the subject, attributes and requested extensions are ignored, because what goes into
// an SVID is decided by registration entries, never by the requester.

import { constants, createPublicKey, type KeyObject, verify } from 'node:crypto'
import {
  DerError,
  decodeOid,
  encodeOid,
  expectTlv,
  readChildren,
  readTlv,
  TAG,
  type Tlv,
  tlvContent,
} from './der.ts'

// An unsupported signature algorithm is CSR_SIGNATURE_INVALID: no accepted proof of possession.
export type CsrErrorCode = 'CSR_MALFORMED' | 'CSR_SIGNATURE_INVALID' | 'CSR_UNSUPPORTED_KEY'

export class CsrError extends Error {
  override readonly name = 'CsrError'
  readonly code: CsrErrorCode

  constructor(code: CsrErrorCode, message: string) {
    super(message)
    this.code = code
  }
}

export type CsrKeyType = 'ec-p256' | 'ec-p384' | 'rsa'

export interface ParsedCsr {
  /** The SubjectPublicKeyInfo, verbatim from the CSR (full TLV). */
  spki: Buffer
  publicKey: KeyObject
  keyType: CsrKeyType
}

export const MAX_CSR_BYTES = 16 * 1024
const MIN_RSA_BITS = 2048
// Verification cost grows with the modulus; refuse keys far beyond anything legitimate.
const MAX_RSA_BITS = 8192

const oidBytes = (oid: string): string => encodeOid(oid).toString('latin1')
const OID = {
  ecPublicKey: oidBytes('1.2.840.10045.2.1'),
  p256: oidBytes('1.2.840.10045.3.1.7'),
  p384: oidBytes('1.3.132.0.34'),
  rsaEncryption: oidBytes('1.2.840.113549.1.1.1'),
  rsassaPss: oidBytes('1.2.840.113549.1.1.10'),
  mgf1: oidBytes('1.2.840.113549.1.1.8'),
}

const ECDSA_HASH = new Map([
  [oidBytes('1.2.840.10045.4.3.2'), 'sha256'],
  [oidBytes('1.2.840.10045.4.3.3'), 'sha384'],
  [oidBytes('1.2.840.10045.4.3.4'), 'sha512'],
])
const RSA_PKCS1_HASH = new Map([
  [oidBytes('1.2.840.113549.1.1.11'), 'sha256'],
  [oidBytes('1.2.840.113549.1.1.12'), 'sha384'],
  [oidBytes('1.2.840.113549.1.1.13'), 'sha512'],
])
const HASH = new Map([
  [oidBytes('2.16.840.1.101.3.4.2.1'), 'sha256'],
  [oidBytes('2.16.840.1.101.3.4.2.2'), 'sha384'],
  [oidBytes('2.16.840.1.101.3.4.2.3'), 'sha512'],
])

interface ImportedKey {
  publicKey: KeyObject
  keyType: CsrKeyType
}

// Importing a key costs more than verifying with it (OpenSSL 3.0 key decoding is slow), so recently seen
// SPKIs are kept. A hit is only possible for byte-identical SPKIs, which denote the same key.
const KEY_CACHE_SIZE = 512
const keyCache = new Map<string, ImportedKey>()

function malformed(message: string): CsrError {
  return new CsrError('CSR_MALFORMED', message)
}

function rawTlv(buf: Uint8Array, tlv: Tlv): string {
  return Buffer.from(buf.buffer, buf.byteOffset + tlv.start, tlv.end - tlv.start).toString('latin1')
}

interface AlgorithmId {
  oid: string
  /** Present parameters, or undefined when absent. */
  params?: Tlv
}

function readAlgorithmId(buf: Uint8Array, tlv: Tlv, what: string): AlgorithmId {
  if (tlv.tag !== TAG.SEQUENCE) throw malformed(`${what} is not an AlgorithmIdentifier SEQUENCE`)
  const parts = readChildren(buf, tlv)
  const oid = parts[0]
  if (!oid || oid.tag !== TAG.OID || parts.length > 2)
    throw malformed(`${what} is not an AlgorithmIdentifier`)
  return { oid: rawTlv(buf, oid), params: parts[1] }
}

function isAbsentOrNull(params: Tlv | undefined): boolean {
  return params === undefined || (params.tag === TAG.NULL && params.contentEnd === params.contentStart)
}

function oidName(raw: string): string {
  try {
    const bytes = Buffer.from(raw, 'latin1')
    return decodeOid(bytes.subarray(readTlv(bytes, 0).contentStart))
  } catch {
    return '(invalid OID)'
  }
}

function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64url')
}

function importKey(buf: Uint8Array, spkiTlv: Tlv): ImportedKey {
  const cacheKey = rawTlv(buf, spkiTlv)
  const cached = keyCache.get(cacheKey)
  if (cached) {
    keyCache.delete(cacheKey)
    keyCache.set(cacheKey, cached)
    return cached
  }

  const parts = readChildren(buf, spkiTlv)
  if (parts.length !== 2 || parts[1]!.tag !== TAG.BIT_STRING)
    throw malformed('SubjectPublicKeyInfo is malformed')
  const alg = readAlgorithmId(buf, parts[0]!, 'SubjectPublicKeyInfo algorithm')
  const bits = parts[1]!
  if (bits.contentEnd === bits.contentStart || buf[bits.contentStart] !== 0) {
    throw malformed('subjectPublicKey BIT STRING has unused bits')
  }
  const keyBytes = buf.subarray(bits.contentStart + 1, bits.contentEnd)

  let imported: ImportedKey
  try {
    imported = importKeyBytes(buf, spkiTlv, alg, keyBytes)
  } catch (err) {
    if (err instanceof CsrError) throw err
    throw malformed('the public key in the CSR is invalid (not a valid point or key encoding)')
  }
  if (keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value!)
  keyCache.set(cacheKey, imported)
  return imported
}

function importKeyBytes(buf: Uint8Array, spkiTlv: Tlv, alg: AlgorithmId, keyBytes: Uint8Array): ImportedKey {
  if (alg.oid === OID.ecPublicKey) {
    const curve = alg.params && alg.params.tag === TAG.OID ? rawTlv(buf, alg.params) : undefined
    if (curve === OID.p256 && keyBytes.length === 65 && keyBytes[0] === 0x04) {
      // For P-256, JWK import is about twice as fast as SPKI decoding in OpenSSL 3.0, and still
      // rejects points that are not on the curve.
      const publicKey = createPublicKey({
        key: {
          kty: 'EC',
          crv: 'P-256',
          x: toBase64Url(keyBytes.subarray(1, 33)),
          y: toBase64Url(keyBytes.subarray(33)),
        },
        format: 'jwk',
      })
      return { publicKey, keyType: 'ec-p256' }
    }
    if (curve === OID.p256 || curve === OID.p384) {
      const spki = Buffer.from(buf.subarray(spkiTlv.start, spkiTlv.end))
      const publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' })
      return { publicKey, keyType: curve === OID.p256 ? 'ec-p256' : 'ec-p384' }
    }
    const name = curve ? oidName(curve) : 'explicit or missing parameters'
    throw new CsrError(
      'CSR_UNSUPPORTED_KEY',
      `EC curve ${name} is not supported; use a P-256 (prime256v1) or P-384 (secp384r1) key.`,
    )
  }
  if (alg.oid === OID.rsaEncryption) {
    if (!isAbsentOrNull(alg.params)) throw malformed('rsaEncryption key parameters must be NULL')
    const publicKey = createPublicKey({ key: Buffer.from(keyBytes), format: 'der', type: 'pkcs1' })
    const bitsLen = publicKey.asymmetricKeyDetails?.modulusLength ?? 0
    const e = publicKey.asymmetricKeyDetails?.publicExponent ?? 0n
    if (bitsLen < MIN_RSA_BITS || bitsLen > MAX_RSA_BITS) {
      throw new CsrError(
        'CSR_UNSUPPORTED_KEY',
        `RSA key of ${bitsLen} bits is not accepted; use ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits (or an EC P-256 key).`,
      )
    }
    if (e < 3n || e % 2n === 0n || e >= 1n << 32n) {
      throw new CsrError('CSR_UNSUPPORTED_KEY', 'RSA public exponent is unusual; use 65537.')
    }
    return { publicKey, keyType: 'rsa' }
  }
  throw new CsrError(
    'CSR_UNSUPPORTED_KEY',
    `public key algorithm ${oidName(alg.oid)} is not supported; use an EC P-256, EC P-384 or RSA (>= 2048 bits) key.`,
  )
}

interface SignatureCheck {
  hash: string
  family: 'ec' | 'rsa'
  pss?: { saltLength: number }
}

function readSignatureAlgorithm(buf: Uint8Array, tlv: Tlv): SignatureCheck {
  const alg = readAlgorithmId(buf, tlv, 'signatureAlgorithm')
  const ecHash = ECDSA_HASH.get(alg.oid)
  if (ecHash) {
    if (!isAbsentOrNull(alg.params)) throw malformed('ECDSA signatureAlgorithm must not have parameters')
    return { hash: ecHash, family: 'ec' }
  }
  const rsaHash = RSA_PKCS1_HASH.get(alg.oid)
  if (rsaHash) {
    if (!isAbsentOrNull(alg.params)) throw malformed('RSA signatureAlgorithm parameters must be NULL')
    return { hash: rsaHash, family: 'rsa' }
  }
  if (alg.oid === OID.rsassaPss) {
    if (!alg.params || alg.params.tag !== TAG.SEQUENCE) throw malformed('RSASSA-PSS parameters are missing')
    return readPssParams(buf, alg.params)
  }
  throw new CsrError(
    'CSR_SIGNATURE_INVALID',
    `CSR signature algorithm ${oidName(alg.oid)} is not supported; sign the CSR with ECDSA or RSA ` +
      'using SHA-256, SHA-384 or SHA-512.',
  )
}

// RSASSA-PSS-params (RFC 4055): the SHA-1 defaults are not accepted, so hash and MGF must be explicit.
function readPssParams(buf: Uint8Array, params: Tlv): SignatureCheck {
  let hash: string | undefined
  let mgfHash: string | undefined
  let saltLength = 20
  let lastTag = -1
  for (const field of readChildren(buf, params)) {
    if (field.tag <= lastTag) throw malformed('RSASSA-PSS parameters are out of order')
    lastTag = field.tag
    const inner = readTlv(buf, field.contentStart, field.contentEnd)
    if (inner.end !== field.contentEnd) throw malformed('RSASSA-PSS parameter has trailing bytes')
    if (field.tag === 0xa0) {
      hash = HASH.get(readAlgorithmId(buf, inner, 'PSS hashAlgorithm').oid)
    } else if (field.tag === 0xa1) {
      const mgf = readAlgorithmId(buf, inner, 'PSS maskGenAlgorithm')
      if (mgf.oid !== OID.mgf1 || !mgf.params) throw unsupportedPss()
      mgfHash = HASH.get(readAlgorithmId(buf, mgf.params, 'MGF1 hash').oid)
    } else if (field.tag === 0xa2) {
      saltLength = readSmallInt(buf, inner)
    } else if (field.tag === 0xa3) {
      if (readSmallInt(buf, inner) !== 1) throw malformed('RSASSA-PSS trailerField must be 1')
    } else {
      throw malformed('RSASSA-PSS parameters contain an unknown field')
    }
  }
  if (!hash || hash !== mgfHash || saltLength > 512) throw unsupportedPss()
  return { hash, family: 'rsa', pss: { saltLength } }
}

function unsupportedPss(): CsrError {
  return new CsrError(
    'CSR_SIGNATURE_INVALID',
    'RSASSA-PSS parameters are not supported; use SHA-256/384/512 with MGF1 over the same hash.',
  )
}

function readSmallInt(buf: Uint8Array, tlv: Tlv): number {
  const len = tlv.contentEnd - tlv.contentStart
  if (tlv.tag !== TAG.INTEGER || len < 1 || len > 2 || (buf[tlv.contentStart]! & 0x80) !== 0) {
    throw malformed('expected a small non-negative INTEGER')
  }
  if (len === 2 && buf[tlv.contentStart] === 0 && (buf[tlv.contentStart + 1]! & 0x80) === 0) {
    throw malformed('INTEGER is not minimally encoded')
  }
  let v = 0
  for (let i = tlv.contentStart; i < tlv.contentEnd; i++) v = v * 256 + buf[i]!
  return v
}

function parseCsrUnchecked(der: Uint8Array): ParsedCsr {
  const outer = expectTlv(der, 0, der.length, TAG.SEQUENCE, 'CertificationRequest')
  if (outer.end !== der.length) {
    throw malformed(
      `CSR has ${der.length - outer.end} trailing bytes after the DER structure; send exactly one CSR`,
    )
  }
  const top = readChildren(der, outer)
  const [info, sigAlg, sig] = top
  if (top.length !== 3 || info!.tag !== TAG.SEQUENCE || sig!.tag !== TAG.BIT_STRING) {
    throw malformed('CSR is not a PKCS#10 CertificationRequest (expected info, algorithm, signature)')
  }

  const fields = readChildren(der, info!)
  const [version, subject, spki, attributes] = fields
  if (
    fields.length < 3 ||
    fields.length > 4 ||
    version!.tag !== TAG.INTEGER ||
    version!.contentEnd - version!.contentStart !== 1 ||
    der[version!.contentStart] !== 0 ||
    subject!.tag !== TAG.SEQUENCE ||
    spki!.tag !== TAG.SEQUENCE ||
    (attributes !== undefined && attributes.tag !== 0xa0)
  ) {
    throw malformed('CertificationRequestInfo is malformed (expected version 0, subject, key, attributes)')
  }

  // Key first, so that a CSR for an unsupported key type says so whatever it is signed with.
  const { publicKey, keyType } = importKey(der, spki!)
  const check = readSignatureAlgorithm(der, sigAlg!)
  const family = keyType === 'rsa' ? 'rsa' : 'ec'
  if (check.family !== family) {
    throw new CsrError(
      'CSR_SIGNATURE_INVALID',
      `CSR is signed with an ${check.family.toUpperCase()} algorithm but carries an ${family.toUpperCase()} key; ` +
        'sign the CSR with its own key.',
    )
  }

  const sigBytes = tlvContent(der, sig!)
  if (sigBytes.length < 2 || sigBytes[0] !== 0) throw malformed('CSR signature BIT STRING is malformed')
  const signed = der.subarray(info!.start, info!.end)
  const key = check.pss
    ? { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: check.pss.saltLength }
    : publicKey
  let valid = false
  try {
    valid = verify(check.hash, signed, key, sigBytes.subarray(1))
  } catch {
    valid = false
  }
  if (!valid) {
    throw new CsrError(
      'CSR_SIGNATURE_INVALID',
      'CSR signature does not verify with the public key it carries (no proof of possession); ' +
        're-create the CSR with the matching private key.',
    )
  }
  return { spki: Buffer.from(der.subarray(spki!.start, spki!.end)), publicKey, keyType }
}

/**
 * Parses a DER PKCS#10 CSR and verifies its self-signature (proof of possession).
 * Throws only CsrError.
 */
export function parseCsr(der: Uint8Array): ParsedCsr {
  if (!(der instanceof Uint8Array)) throw malformed('CSR must be DER bytes')
  if (der.length > MAX_CSR_BYTES) throw malformed(`CSR is ${der.length} bytes; the limit is ${MAX_CSR_BYTES}`)
  try {
    return parseCsrUnchecked(der)
  } catch (err) {
    if (err instanceof CsrError) throw err
    if (err instanceof DerError) throw malformed(`CSR is not valid DER: ${err.message}`)
    throw malformed('CSR could not be parsed')
  }
}
