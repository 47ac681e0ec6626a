// Test certificates for attestation: CAs, node certificates, TLS server certificates, built with
// @peculiar/x509 over WebCrypto keys (extractable, so tests can write the key files a user would have).

import { randomBytes, webcrypto } from 'node:crypto'
import { x509 } from '../../../services/authority/x509-lib.ts'

export const HOUR = 3_600_000
export const DAY = 24 * HOUR

export type KeyKind = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'ed25519'

const algs: Record<KeyKind, webcrypto.AlgorithmIdentifier | Record<string, unknown>> = {
  'ec-p256': { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
  'ec-p384': { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' },
  'rsa-2048': {
    name: 'RSASSA-PKCS1-v1_5',
    hash: 'SHA-256',
    modulusLength: 2048,
    publicExponent: new Uint8Array([1, 0, 1]),
  },
  ed25519: { name: 'Ed25519' },
}

export interface TestCert {
  cert: x509.X509Certificate
  keys: webcrypto.CryptoKeyPair
  kind: KeyKind
  pem: string
  der: Buffer
  keyPem: string
}

export async function generateKeys(kind: KeyKind): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(algs[kind] as never, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair
}

async function keyPem(keys: webcrypto.CryptoKeyPair): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey))
  return `-----BEGIN PRIVATE KEY-----\n${der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END PRIVATE KEY-----\n`
}

export interface CertOptions {
  subject: string
  issuer?: TestCert
  kind?: KeyKind
  ca?: boolean
  pathLength?: number
  keyUsage?: number
  notBefore?: number
  notAfter?: number
  uris?: string[]
  ips?: string[]
  dns?: string[]
  noKeyUsage?: boolean
}

export async function makeCert(opts: CertOptions): Promise<TestCert> {
  const kind = opts.kind ?? 'ec-p256'
  const keys = await generateKeys(kind)
  const now = Date.now()
  const ca = opts.ca ?? false
  const usage =
    opts.keyUsage ??
    (ca
      ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
      : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment)
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(ca, ca ? opts.pathLength : undefined, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ]
  if (!opts.noKeyUsage) extensions.push(new x509.KeyUsagesExtension(usage, true))
  const names: x509.JsonGeneralName[] = [
    ...(opts.uris ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(opts.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
  ]
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names))
  if (opts.issuer)
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(opts.issuer.keys.publicKey))
  const signer = opts.issuer ?? { keys, kind }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8)
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    subject: opts.subject,
    issuer: opts.issuer ? opts.issuer.cert.subject : opts.subject,
    notBefore: new Date(opts.notBefore ?? now - HOUR),
    notAfter: new Date(opts.notAfter ?? now + DAY),
    publicKey: keys.publicKey,
    signingKey: signer.keys.privateKey,
    signingAlgorithm: algs[signer.kind] as never,
    extensions,
  })
  return {
    cert,
    keys,
    kind,
    pem: cert.toString('pem'),
    der: Buffer.from(cert.rawData),
    keyPem: await keyPem(keys),
  }
}

export function b64(cert: TestCert): string {
  return cert.der.toString('base64')
}
