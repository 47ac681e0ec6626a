import { webcrypto } from 'node:crypto'
import { x509 } from '../../services/authority/x509-lib.ts'

type CryptoKeyPair = webcrypto.CryptoKeyPair

const algs = {
  'ec-p256': { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
  'ec-p384': { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' },
  'rsa-2048': {
    name: 'RSASSA-PKCS1-v1_5',
    hash: 'SHA-256',
    modulusLength: 2048,
    publicExponent: new Uint8Array([1, 0, 1]),
  },
} as const

export interface TestCsr {
  pem: string
  der: Buffer
  keys: CryptoKeyPair
  /** The private key as PKCS#8 PEM, for openssl/curl clients in tests. */
  keyPem: string
}

export async function makeCsr(kind: keyof typeof algs = 'ec-p256'): Promise<TestCsr> {
  const alg = algs[kind]
  const keys = (await webcrypto.subtle.generateKey(alg as never, true, ['sign', 'verify'])) as CryptoKeyPair
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=test',
    keys,
    signingAlgorithm: alg as never,
  })
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey))
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END PRIVATE KEY-----\n`
  return { pem: csr.toString('pem'), der: Buffer.from(csr.rawData), keys, keyPem }
}
