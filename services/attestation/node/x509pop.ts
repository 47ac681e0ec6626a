// x509pop: the agent proves possession of a private key whose certificate chains to a CA the trust
// domain trusts for node identities. Round 1: the chain (DER, leaf first). The server checks the path
// and answers a random nonce. Round 2: the agent signs the challenge message with the leaf key.
//
// The state handed back with the challenge holds the verified result and the nonce; it must stay with
// the server (the agent service seals it), or an agent could name its own result.
//
// An agent that still holds a valid agent X509-SVID renews through the agent API (mTLS with that SVID),
// not by attesting again; x509pop re-attestation is for an agent that lost or let its SVID expire.

import { createPublicKey, randomBytes, verify } from 'node:crypto'
import {
  type Cert,
  ChainError,
  describeCert,
  isCa,
  MAX_CHAIN,
  parseCertDer,
  parsePemCertificates,
  subjectCn,
  uriSans,
  verifyChain,
} from '../../authority/x509-chain.ts'
import { failed, invalidEvidence } from '../errors.ts'
import { PreparedConfigs } from './config.ts'
import { base64UrlField, evidenceObject } from './evidence.ts'
import type { NodeAttestationContext, NodeAttestationStep } from './node-attestor.ts'
import type { RegisteredAttestor } from './registry.ts'
import { agentId, Selectors } from './result.ts'

const NAME = 'x509pop'
/** Both sides sign this prefix + the nonce, so a challenge can never be a TLS transcript or a CSR. */
export const X509POP_CONTEXT = 'sigil x509pop challenge v1\n'
const CHALLENGE_TTL_MS = 60_000
const MAX_CERT_BYTES = 16 * 1024

export interface X509PopConfig {
  caBundlePem: string
}

interface Prepared {
  anchors: Cert[]
}

export const x509popConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['caBundlePem'],
  properties: {
    caBundlePem: { type: 'string', minLength: 1, maxLength: 1_000_000 },
  },
}

interface State {
  nonce: string
  leafSpki: string
  agentId: string
  selectors: { type: string; value: string }[]
  expiresAt: number
}

function prepare(config: X509PopConfig): Prepared {
  const anchors = parsePemCertificates(config.caBundlePem, 'caBundlePem')
  for (const anchor of anchors) {
    if (!isCa(anchor)) throw new Error(`caBundlePem: ${describeCert(anchor)} is not a CA certificate`)
  }
  return { anchors }
}

function parseChain(evidence: unknown): Cert[] {
  const obj = evidenceObject(NAME, evidence, ['certificates'])
  const list = obj.certificates
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_CHAIN) {
    throw invalidEvidence(
      NAME,
      `field certificates must be an array of 1 to ${MAX_CHAIN} base64 DER certificates, leaf first`,
    )
  }
  return list.map((_, i) => {
    const der = base64UrlOrStd(list as unknown[], i)
    try {
      return parseCertDer(der)
    } catch {
      throw invalidEvidence(NAME, `certificate ${i + 1} is not a DER X.509 certificate`)
    }
  })
}

function base64UrlOrStd(list: unknown[], i: number): Buffer {
  const item = list[i]
  if (typeof item !== 'string' || item.length === 0 || item.length > (MAX_CERT_BYTES * 4) / 3 + 4) {
    throw invalidEvidence(
      NAME,
      `certificate ${i + 1} must be a base64 string of at most ${MAX_CERT_BYTES} bytes`,
    )
  }
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(item))
    throw invalidEvidence(NAME, `certificate ${i + 1} is not base64`)
  return Buffer.from(item, item.includes('-') || item.includes('_') ? 'base64url' : 'base64')
}

function cn(leaf: Cert): string | undefined {
  const value = subjectCn(leaf)
  return value === undefined ? undefined : `cn:${value}`
}

function verifyAnswer(state: State, answer: unknown, now: number): void {
  if (
    typeof state?.nonce !== 'string' ||
    typeof state.leafSpki !== 'string' ||
    typeof state.expiresAt !== 'number'
  ) {
    throw new TypeError('x509pop: round state is not the one this attestor returned')
  }
  if (now > state.expiresAt) {
    throw failed(
      `x509pop challenge for ${state.agentId} expired; the agent must answer within ${CHALLENGE_TTL_MS / 1000}s`,
    )
  }
  const obj = evidenceObject(NAME, answer, ['signature'], 'answer')
  const signature = base64UrlField(NAME, obj, 'signature', 2048)
  const key = createPublicKey({ key: Buffer.from(state.leafSpki, 'base64'), format: 'der', type: 'spki' })
  const message = Buffer.concat([Buffer.from(X509POP_CONTEXT), Buffer.from(state.nonce, 'base64url')])
  let ok = false
  try {
    ok = verify(
      hashFor(key.asymmetricKeyType, key.asymmetricKeyDetails?.namedCurve),
      message,
      {
        key,
        dsaEncoding: 'ieee-p1363',
      },
      signature,
    )
  } catch {
    ok = false
  }
  if (!ok) {
    throw failed(
      `x509pop proof of possession failed for ${state.agentId}: the challenge signature does not verify with the certificate's key`,
    )
  }
}

/** Hash per key type; ECDSA signatures are IEEE P1363 (r || s), as WebCrypto makes them. */
export function hashFor(keyType: string | undefined, curve?: string): string | null {
  if (keyType === 'ed25519' || keyType === 'ed448') return null
  if (keyType === 'ec' && (curve === 'secp384r1' || curve === 'P-384')) return 'sha384'
  if (keyType === 'ec' && (curve === 'secp521r1' || curve === 'P-521')) return 'sha512'
  return 'sha256'
}

export function createX509PopAttestor(): RegisteredAttestor {
  const configs = new PreparedConfigs<Prepared>(NAME, x509popConfigSchema, prepare)
  return {
    name: NAME,
    configSchema: x509popConfigSchema,
    validateConfig: (raw) => void configs.validate(raw),
    async attest(
      evidence: unknown,
      ctx: NodeAttestationContext,
      round?: { state: unknown; answer: unknown },
    ): Promise<NodeAttestationStep> {
      const now = ctx.clock.now()
      if (round) {
        const state = round.state as State
        verifyAnswer(state, round.answer, now)
        return {
          done: true,
          result: { agentId: state.agentId, selectors: state.selectors, canReattest: true },
        }
      }
      const { anchors } = configs.get(ctx.trustDomain, ctx.config)
      const [leaf, ...rest] = parseChain(evidence)
      let path: Cert[]
      try {
        path = verifyChain(leaf!, rest, anchors, now)
      } catch (err) {
        if (err instanceof ChainError) throw failed(`x509pop: ${err.message}`, err)
        throw err
      }
      const fingerprint = leaf!.sha256
      const selectors = new Selectors(NAME).add('subject', cn(leaf!))
      for (const ca of path.slice(1)) selectors.add('ca-fingerprint', ca.sha256)
      for (const uri of uriSans(leaf!)) selectors.add('san-uri', uri)
      const state: State = {
        nonce: randomBytes(32).toString('base64url'),
        leafSpki: leaf!.node.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
        agentId: agentId(ctx.trustDomain, NAME, fingerprint),
        selectors: selectors.list,
        expiresAt: now + CHALLENGE_TTL_MS,
      }
      return { done: false, challenge: { nonce: state.nonce }, state }
    },
  }
}
