// The service CA: signs the trust service's own HTTPS certificate (not a SPIFFE trust domain). The first
// start creates it and stores it sealed in the store, so replicas sharing a store present certificates
// from one CA; its certificate is written to `server-ca.pem` for clients. Each process generates its
// own TLS key in memory at every start.

import { createPrivateKey, type KeyObject, randomBytes, webcrypto } from 'node:crypto'
import { isIP } from 'node:net'
import type { Store } from '../store/store.ts'
import type { KeyManager } from './key-manager.ts'
import { x509 } from './x509-lib.ts'

const META_KEY = 'service-ca'
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const

interface StoredServiceCa {
  certPem: string
  sealedKey: string
}

export interface ServerTls {
  caPem: string
  certPem: string
  keyPem: string
  notAfter: Date
}

function serial(): string {
  const bytes = randomBytes(16)
  bytes[0] = bytes[0]! & 0x7f
  return bytes.toString('hex')
}

async function createServiceCa(keys: KeyManager): Promise<StoredServiceCa> {
  const pair = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])
  const now = Date.now()
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `O=Sigil, CN=Sigil service CA ${randomBytes(4).toString('hex')}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 10 * 365 * 24 * 3600 * 1000),
    keys: pair,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(pair.publicKey),
    ],
  })
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey))
  return { certPem: cert.toString('pem'), sealedKey: await keys.seal(pkcs8, META_KEY) }
}

/** Returns the installation's service CA, creating it atomically if no process has yet. */
export async function loadServiceCa(
  store: Store,
  keys: KeyManager,
): Promise<{ certPem: string; key: KeyObject }> {
  let raw = await store.getMeta(META_KEY)
  if (!raw) {
    const created = await createServiceCa(keys)
    await store.setMetaIfAbsent(META_KEY, JSON.stringify(created))
    raw = await store.getMeta(META_KEY)
  }
  const stored = JSON.parse(raw!) as StoredServiceCa
  const pkcs8 = await keys.unseal(stored.sealedKey, META_KEY)
  const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
  pkcs8.fill(0)
  return { certPem: stored.certPem, key }
}

/** Issues this process's HTTPS certificate (30 days, renewed at every start) for the given names. */
export async function issueServerTls(
  ca: { certPem: string; key: KeyObject },
  names: string[],
): Promise<ServerTls> {
  const caCert = new x509.X509Certificate(ca.certPem)
  const caKey = await webcrypto.subtle.importKey(
    'pkcs8',
    ca.key.export({ format: 'der', type: 'pkcs8' }),
    ALG,
    false,
    ['sign'],
  )
  const pair = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])
  const unique = [...new Set(['localhost', '127.0.0.1', '::1', ...names])]
  const sans = unique.map((n) =>
    isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n },
  )
  const now = Date.now()
  const notAfter = new Date(now + 30 * 24 * 3600 * 1000)
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: 'O=Sigil, CN=sigil-server',
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter,
    publicKey: pair.publicKey,
    signingKey: caKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(sans),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  })
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey))
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
    .export({ format: 'pem', type: 'pkcs8' })
    .toString()
  return { caPem: ca.certPem, certPem: cert.toString('pem'), keyPem, notAfter }
}
