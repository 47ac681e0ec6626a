// x509pop: proves possession of a key whose certificate chains to a CA the trust domain trusts. The
// certificate and key files are the user's; they are read once, at start. The key then lives only as
// a non-extractable WebCrypto key.
//
// Re-attesting is for an agent without a valid agent SVID; while it has one it renews through the agent
// API with that SVID instead.

import { createPrivateKey, type KeyObject, webcrypto, X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { EvidenceError } from '../errors.ts'
import { configObject, optionalString, stringOption } from './config.ts'
import type { AgentNodeAttestor } from './node-attestor.ts'

/** Both sides sign this prefix + the nonce; the server's x509pop.ts holds the same constant. */
export const X509POP_CONTEXT = 'sigil x509pop challenge v1\n'

export interface X509PopAgentConfig {
  /** PEM: the node's certificate first, then any intermediates. */
  certificatePath: string
  privateKeyPath: string
  /** PEM intermediates, when they are not in certificatePath. */
  intermediatesPath?: string
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g

async function readUserFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw new TypeError(
      `x509pop: cannot read the ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    )
  }
}

function certificates(pem: string, path: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERT) ?? []
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block)
    } catch {
      throw new TypeError(`x509pop: certificate ${i + 1} in ${path} does not parse`)
    }
  })
}

interface SignAlgorithm {
  import: webcrypto.AlgorithmIdentifier | webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams
  sign: webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams
}

function algorithmFor(key: KeyObject): SignAlgorithm {
  const type = key.asymmetricKeyType
  if (type === 'rsa') {
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
    return { import: alg, sign: alg }
  }
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve
    const named =
      curve === 'prime256v1'
        ? 'P-256'
        : curve === 'secp384r1'
          ? 'P-384'
          : curve === 'secp521r1'
            ? 'P-521'
            : undefined
    if (!named) throw new TypeError(`x509pop: EC curve ${curve} is not supported (P-256, P-384, P-521)`)
    const hash = named === 'P-256' ? 'SHA-256' : named === 'P-384' ? 'SHA-384' : 'SHA-512'
    return { import: { name: 'ECDSA', namedCurve: named }, sign: { name: 'ECDSA', hash } }
  }
  if (type === 'ed25519') return { import: { name: 'Ed25519' }, sign: { name: 'Ed25519' } }
  throw new TypeError(`x509pop: ${type} keys are not supported (RSA, ECDSA P-256/384/521, Ed25519)`)
}

export async function createX509PopAgentAttestor(config: X509PopAgentConfig): Promise<AgentNodeAttestor> {
  const obj = configObject('x509pop', config, ['certificatePath', 'privateKeyPath', 'intermediatesPath'])
  const certPath = stringOption('x509pop', obj, 'certificatePath')
  const keyPath = stringOption('x509pop', obj, 'privateKeyPath')
  const intermediatesPath = optionalString('x509pop', obj, 'intermediatesPath')

  const chain = certificates(await readUserFile(certPath, 'certificate file'), certPath)
  if (intermediatesPath)
    chain.push(
      ...certificates(await readUserFile(intermediatesPath, 'intermediates file'), intermediatesPath),
    )
  const leaf = chain[0]
  if (!leaf) throw new TypeError(`x509pop: ${certPath} holds no PEM certificate`)

  let keyObject: KeyObject
  try {
    keyObject = createPrivateKey(await readUserFile(keyPath, 'private key file'))
  } catch (err) {
    if (err instanceof TypeError && err.message.startsWith('x509pop')) throw err
    throw new TypeError(`x509pop: ${keyPath} does not hold a usable unencrypted private key`)
  }
  if (!leaf.checkPrivateKey(keyObject)) {
    throw new TypeError(
      `x509pop: the private key in ${keyPath} does not belong to the certificate in ${certPath}`,
    )
  }
  const algorithm = algorithmFor(keyObject)
  const pkcs8 = keyObject.export({ format: 'der', type: 'pkcs8' })
  const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, algorithm.import, false, ['sign'])
  pkcs8.fill(0)
  const certificatesDer = chain.map((c) => c.raw.toString('base64'))

  return {
    name: 'x509pop',
    evidence: async () => ({ certificates: certificatesDer }),
    async answer(challenge: unknown) {
      const nonce = (challenge as { nonce?: unknown } | null)?.nonce
      if (typeof nonce !== 'string' || !/^[A-Za-z0-9_-]{22,128}$/.test(nonce)) {
        throw new EvidenceError(
          'ATTESTATION_CHALLENGE_INVALID',
          'x509pop: the server sent a challenge without a usable nonce',
        )
      }
      const message = Buffer.concat([Buffer.from(X509POP_CONTEXT), Buffer.from(nonce, 'base64url')])
      const signature = await webcrypto.subtle.sign(algorithm.sign, signingKey, message)
      return { signature: Buffer.from(signature).toString('base64url') }
    },
  }
}
