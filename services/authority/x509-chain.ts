// Certificate parsing and path validation: x509pop agent chains, signer certificates embedded in an AWS
// PKCS#7, and agents' X509-SVIDs presented as TLS client certificates. Signatures are checked with node:crypto, which also handles DSA (AWS's
// PKCS#7 certificates); @peculiar/x509 supplies the parsed view of names and extensions.

import { createHash, X509Certificate as NodeCertificate } from 'node:crypto'
import { x509 } from './x509-lib.ts'

export interface Cert {
  der: Buffer
  node: NodeCertificate
  view: x509.X509Certificate
  /** sha256 of the DER, lowercase hex. */
  sha256: string
}

export class ChainError extends Error {
  override readonly name = 'ChainError'
}

export const MAX_CHAIN = 8

export function parseCertDer(der: Uint8Array): Cert {
  const buf = Buffer.from(der)
  const node = new NodeCertificate(buf)
  const view = new x509.X509Certificate(buf)
  return { der: buf, node, view, sha256: createHash('sha256').update(buf).digest('hex') }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g

/** Every certificate of a PEM text; throws when there is none or one does not parse. */
export function parsePemCertificates(pem: string, what: string): Cert[] {
  const certs: Cert[] = []
  for (const match of pem.matchAll(PEM_CERT)) {
    try {
      certs.push(parseCertDer(Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64')))
    } catch (err) {
      throw new ChainError(
        `${what}: certificate ${certs.length + 1} does not parse (${(err as Error).message})`,
      )
    }
  }
  if (certs.length === 0) throw new ChainError(`${what} holds no PEM certificate`)
  return certs
}

function keyUsages(cert: Cert): number | undefined {
  return cert.view.getExtension(x509.KeyUsagesExtension)?.usages
}

function basicConstraints(cert: Cert): { ca: boolean; pathLength?: number } {
  const ext = cert.view.getExtension(x509.BasicConstraintsExtension)
  return ext ? { ca: ext.ca, pathLength: ext.pathLength } : { ca: false }
}

export function isCa(cert: Cert): boolean {
  return basicConstraints(cert).ca
}

export function subjectCn(cert: Cert): string | undefined {
  return cert.view.subjectName.getField('CN')[0]
}

export function uriSans(cert: Cert): string[] {
  const san = cert.view.getExtension(x509.SubjectAlternativeNameExtension)
  return san ? san.names.items.filter((n) => n.type === 'url').map((n) => n.value) : []
}

export function describeCert(cert: Cert): string {
  return `${JSON.stringify(cert.node.subject.replace(/\n/g, ', '))} (sha256 ${cert.sha256.slice(0, 16)}…)`
}

function checkValidAt(cert: Cert, now: number, role: string): void {
  if (now < cert.view.notBefore.getTime()) {
    throw new ChainError(
      `${role} ${describeCert(cert)} is not valid before ${cert.view.notBefore.toISOString()}`,
    )
  }
  if (now > cert.view.notAfter.getTime()) {
    throw new ChainError(`${role} ${describeCert(cert)} expired at ${cert.view.notAfter.toISOString()}`)
  }
}

/**
 * Whether `parent` signed `child`: the names match and the signature verifies. Whether the parent may
 * issue certificates at all is checked apart (checkCa), so that a refusal can say so.
 */
export function issued(parent: Cert, child: Cert): boolean {
  if (child.node.issuer !== parent.node.subject) return false
  try {
    return child.node.verify(parent.node.publicKey)
  } catch {
    return false
  }
}

function checkCa(cert: Cert, below: number, now: number, role: string): void {
  checkValidAt(cert, now, role)
  const bc = basicConstraints(cert)
  if (!bc.ca)
    throw new ChainError(`${role} ${describeCert(cert)} is not a CA (basicConstraints cA is not set)`)
  const ku = keyUsages(cert)
  if (ku !== undefined && (ku & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw new ChainError(
      `${role} ${describeCert(cert)} may not sign certificates (keyUsage lacks keyCertSign)`,
    )
  }
  if (bc.pathLength !== undefined && below > bc.pathLength) {
    throw new ChainError(
      `${role} ${describeCert(cert)} allows ${bc.pathLength} CA(s) below it, the chain has ${below}`,
    )
  }
}

/**
 * Builds and checks a path from `leaf` through `intermediates` to one of `anchors`. Every certificate
 * must be valid at `now`; CAs must be CAs and may sign certificates; the leaf must allow digital
 * signatures and must not itself be a CA. Returns the path, leaf first, anchor last.
 */
export function verifyChain(leaf: Cert, intermediates: Cert[], anchors: Cert[], now: number): Cert[] {
  checkValidAt(leaf, now, 'certificate')
  if (isCa(leaf)) throw new ChainError(`certificate ${describeCert(leaf)} is a CA certificate, not a node's`)
  const ku = keyUsages(leaf)
  if (ku !== undefined && (ku & x509.KeyUsageFlags.digitalSignature) === 0) {
    throw new ChainError(`certificate ${describeCert(leaf)} may not sign (keyUsage lacks digitalSignature)`)
  }
  const path: Cert[] = [leaf]
  const anchorHashes = new Set(anchors.map((a) => a.sha256))
  const pool = intermediates.filter((c) => !anchorHashes.has(c.sha256))
  let problem: ChainError | undefined
  for (;;) {
    const current = path[path.length - 1]!
    const anchor = anchors.find((a) => issued(a, current))
    if (anchor) {
      checkCa(anchor, path.length - 1, now, 'trusted CA')
      path.push(anchor)
      return path
    }
    if (path.length >= MAX_CHAIN) break
    const next = pool.find((c) => !path.includes(c) && issued(c, current))
    if (!next) break
    try {
      checkCa(next, path.length - 1, now, 'intermediate CA')
    } catch (err) {
      problem = err as ChainError
      break
    }
    path.push(next)
  }
  if (problem) throw problem
  const last = path[path.length - 1]!
  throw new ChainError(
    `certificate ${describeCert(leaf)} does not chain to a trusted CA: no trusted CA or presented intermediate issued ${describeCert(last)} (issuer ${JSON.stringify(last.node.issuer.replace(/\n/g, ', '))})`,
  )
}
