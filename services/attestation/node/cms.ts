// CMS (PKCS#7) SignedData verification for AWS instance identity documents. pkijs parses the
// structure; node:crypto checks the signature, because AWS signs the `/pkcs7` form with DSA, which
// WebCrypto (and so pkijs's own verify) cannot do. The signer is found by its SignerIdentifier among
// the trusted certificates (AWS ships none inside), or among the embedded ones when those chain to a
// trusted CA.

import { createHash, verify } from 'node:crypto'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import { type Cert, ChainError, isCa, parseCertDer, verifyChain } from '../../authority/x509-chain.ts'

export class CmsError extends Error {
  override readonly name = 'CmsError'
}

const OID = {
  signedData: '1.2.840.113549.1.7.2',
  data: '1.2.840.113549.1.7.1',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  rsassaPss: '1.2.840.113549.1.1.10',
  subjectKeyIdentifier: '2.5.29.14',
}

const DIGESTS: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
}

export interface CmsVerified {
  content: Buffer
  signer: Cert
}

function bytes(buf: ArrayBuffer | ArrayBufferView): Buffer {
  return ArrayBuffer.isView(buf) ? Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength) : Buffer.from(buf)
}

function parse(der: Buffer): pkijs.SignedData {
  const asn = asn1js.fromBER(der)
  if (asn.offset === -1 || asn.offset !== der.length) throw new CmsError('is not a single DER structure')
  let info: pkijs.ContentInfo
  try {
    info = new pkijs.ContentInfo({ schema: asn.result })
  } catch {
    throw new CmsError('is not a CMS ContentInfo')
  }
  if (info.contentType !== OID.signedData) throw new CmsError(`holds ${info.contentType}, not SignedData`)
  try {
    return new pkijs.SignedData({ schema: info.content })
  } catch {
    throw new CmsError('holds a malformed SignedData')
  }
}

function subjectKeyId(cert: Cert): Buffer {
  const ext = cert.view.extensions.find((e) => e.type === OID.subjectKeyIdentifier)
  if (ext) {
    const inner = asn1js.fromBER(ext.value)
    if (inner.offset !== -1 && inner.result instanceof asn1js.OctetString)
      return bytes(inner.result.valueBlock.valueHexView)
  }
  const spki = pkijs.PublicKeyInfo.fromBER(cert.node.publicKey.export({ format: 'der', type: 'spki' }))
  return createHash('sha1').update(spki.subjectPublicKey.valueBlock.valueHexView).digest()
}

function matchesSid(sid: unknown, cert: Cert): boolean {
  if (sid instanceof pkijs.IssuerAndSerialNumber) {
    const parsed = pkijs.Certificate.fromBER(cert.der)
    return (
      bytes(parsed.issuer.toSchema().toBER()).equals(bytes(sid.issuer.toSchema().toBER())) &&
      bytes(parsed.serialNumber.valueBlock.valueHexView).equals(
        bytes(sid.serialNumber.valueBlock.valueHexView),
      )
    )
  }
  const block = sid as asn1js.BaseBlock & {
    valueBlock: { value?: asn1js.BaseBlock[]; valueHexView?: Uint8Array }
  }
  const inner = block.idBlock.isConstructed
    ? (block.valueBlock.value?.[0] as asn1js.OctetString | undefined)
    : undefined
  const keyId = inner ? inner.valueBlock.valueHexView : block.valueBlock.valueHexView
  return keyId !== undefined && bytes(keyId).equals(subjectKeyId(cert))
}

function findSigner(sd: pkijs.SignedData, sid: unknown, trusted: Cert[], now: number): Cert {
  // A configured signer certificate is trusted as it is, dates included: AWS's own verification
  // recipe does not check them (openssl smime -verify -noverify).
  const direct = trusted.find((c) => matchesSid(sid, c))
  if (direct) return direct
  const embedded: Cert[] = []
  for (const c of sd.certificates ?? []) {
    if (!(c instanceof pkijs.Certificate)) continue
    try {
      embedded.push(parseCertDer(bytes(c.toSchema().toBER())))
    } catch {
      throw new CmsError('embeds a certificate that does not parse')
    }
  }
  const signer = embedded.find((c) => matchesSid(sid, c))
  if (!signer) throw new CmsError('is signed by a certificate that is neither trusted nor embedded')
  try {
    verifyChain(
      signer,
      embedded.filter((c) => c !== signer),
      trusted.filter((c) => isCa(c)),
      now,
    )
  } catch (err) {
    if (err instanceof ChainError) throw new CmsError(`signer: ${err.message}`)
    throw err
  }
  return signer
}

/** Verifies an attached-content SignedData with exactly one signer; returns the content and signer. */
export function verifySignedData(der: Buffer, trusted: Cert[], now: number): CmsVerified {
  const sd = parse(der)
  if (sd.encapContentInfo.eContentType !== OID.data) throw new CmsError('does not sign plain data')
  const eContent = sd.encapContentInfo.eContent
  if (!eContent) throw new CmsError('has no attached content')
  const content = bytes(eContent.getValue())
  if (sd.signerInfos.length !== 1) throw new CmsError(`has ${sd.signerInfos.length} signers, not 1`)
  const info = sd.signerInfos[0]!
  const hash = DIGESTS[info.digestAlgorithm.algorithmId]
  if (!hash) throw new CmsError(`uses an unsupported digest ${info.digestAlgorithm.algorithmId}`)
  if (info.signatureAlgorithm.algorithmId === OID.rsassaPss)
    throw new CmsError('uses RSASSA-PSS, which is not supported')
  const signer = findSigner(sd, info.sid, trusted, now)

  let signed: Buffer = content
  if (info.signedAttrs) {
    const attrs = info.signedAttrs.attributes
    const type = attrs.find((a) => a.type === OID.contentType)?.values[0]
    const digest = attrs.find((a) => a.type === OID.messageDigest)?.values[0]
    if (!(type instanceof asn1js.ObjectIdentifier) || type.valueBlock.toString() !== OID.data) {
      throw new CmsError('signed attributes lack the content-type "data"')
    }
    if (!(digest instanceof asn1js.OctetString))
      throw new CmsError('signed attributes lack the message digest')
    if (!bytes(digest.valueBlock.valueHexView).equals(createHash(hash).update(content).digest())) {
      throw new CmsError('message digest does not match the content')
    }
    // pkijs keeps the attributes as received, retagged from [0] IMPLICIT to SET OF, as they were signed.
    signed = bytes(info.signedAttrs.encodedValue)
  }
  let ok = false
  try {
    ok = verify(hash, signed, signer.node.publicKey, bytes(info.signature.valueBlock.valueHexView))
  } catch {
    ok = false
  }
  if (!ok) throw new CmsError('signature does not verify with the signer certificate')
  return { content, signer }
}
