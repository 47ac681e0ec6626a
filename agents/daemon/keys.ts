// Key pairs and CSRs for SVIDs. Keys exist in memory only: a workload SVID's key must be exportable
// (the Workload API hands it to the workload as PKCS#8), and the agent's own key is handed to node:tls,
// which takes PEM; neither is ever written anywhere.

import { createPrivateKey, type KeyObject, webcrypto } from 'node:crypto'
import { x509 } from '../../services/authority/x509-lib.ts'

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const

export interface KeyAndCsr {
  privateKey: KeyObject
  /** PKCS#8 DER of the private key (memory only). */
  privateKeyDer: Buffer
  /** The CSR, DER. */
  csrDer: Buffer
}

export async function keyAndCsr(): Promise<KeyAndCsr> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'O=Sigil',
    keys,
    signingAlgorithm: ALG,
  })
  const privateKeyDer = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey))
  const privateKey = createPrivateKey({ key: privateKeyDer, format: 'der', type: 'pkcs8' })
  return { privateKey, privateKeyDer, csrDer: Buffer.from(csr.rawData) }
}

export function toPem(der: Buffer, label: string): string {
  return `-----BEGIN ${label}-----\n${der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END ${label}-----\n`
}
