// The signing worker: verifies CSRs and signs X509-SVIDs for the SigningPool, off the main thread. The
// same issueBatch runs inline when the pool has no workers. Issuer private keys arrive as KeyObjects
// over postMessage and live only in this thread's memory.

import type { KeyObject } from 'node:crypto'
import { isMainThread, parentPort, workerData } from 'node:worker_threads'
import { CsrError, parseCsr } from './csr.ts'
import { SpiffeIdError } from './spiffe-id.ts'
import { X509SvidError, X509SvidIssuer } from './x509-svid.ts'

export interface SigningItem {
  csrDer: Uint8Array
  spiffeId: string
  dnsNames: string[]
  /** ms since the epoch */
  notBefore: number
  notAfter: number
  /** Serial magnitude; random when omitted (tests pin it to compare outputs). */
  serial?: Uint8Array
}

export type SigningResult =
  | { ok: true; der: Buffer; serialHex: string }
  | { ok: false; code: string; message: string }

export type ToWorker =
  | { type: 'setIssuer'; issuerId: string; certDer: Uint8Array; privateKey: KeyObject }
  | { type: 'removeIssuer'; issuerId: string }
  | { type: 'issue'; id: number; issuerId: string; items: SigningItem[] }

export type FromWorker =
  | { type: 'ready' }
  | { type: 'result'; id: number; results: SigningResult[] }
  | { type: 'issuerError'; issuerId: string; message: string }

export const WORKER_ROLE = 'sigil-signing-worker'

// Codes are those of the API's error registry (services/errors.ts), so callers can pass them through.
// The SPIFFE ID, DNS names and validity are validated before they reach the pool; failing here means a
// caller bug, still reported per item.
function itemError(err: unknown): SigningResult {
  if (err instanceof CsrError) return { ok: false, code: err.code, message: err.message }
  if (err instanceof SpiffeIdError) return { ok: false, code: 'SPIFFE_ID_INVALID', message: err.message }
  if (err instanceof X509SvidError) {
    const code =
      err.code === 'SVID_TRUST_DOMAIN_MISMATCH'
        ? 'SPIFFE_ID_FOREIGN_TRUST_DOMAIN'
        : err.code === 'SVID_DNS_NAME_INVALID'
          ? 'DNS_NAME_INVALID'
          : err.code === 'SVID_VALIDITY_INVALID'
            ? 'TTL_INVALID'
            : 'INTERNAL'
    return { ok: false, code, message: err.message }
  }
  return { ok: false, code: 'INTERNAL', message: 'internal error while signing the SVID' }
}

export function issueOne(issuer: X509SvidIssuer | undefined, item: SigningItem): SigningResult {
  if (!issuer) {
    return {
      ok: false,
      code: 'INTERNAL',
      message: 'the signing CA is no longer loaded (it was rotated out); retry',
    }
  }
  try {
    const csr = parseCsr(item.csrDer)
    const svid = issuer.issue({
      spki: csr.spki,
      spiffeId: item.spiffeId,
      dnsNames: item.dnsNames,
      notBefore: item.notBefore,
      notAfter: item.notAfter,
      serial: item.serial ? Buffer.from(item.serial) : undefined,
    })
    return { ok: true, der: svid.der, serialHex: svid.serialHex }
  } catch (err) {
    return itemError(err)
  }
}

export function issueBatch(issuer: X509SvidIssuer | undefined, items: SigningItem[]): SigningResult[] {
  return items.map((item) => issueOne(issuer, item))
}

function runWorker(port: NonNullable<typeof parentPort>): void {
  const issuers = new Map<string, X509SvidIssuer>()
  port.on('message', (msg: ToWorker) => {
    switch (msg.type) {
      case 'setIssuer':
        try {
          issuers.set(
            msg.issuerId,
            new X509SvidIssuer({ certDer: Buffer.from(msg.certDer), privateKey: msg.privateKey }),
          )
        } catch (err) {
          issuers.delete(msg.issuerId)
          port.postMessage({ type: 'issuerError', issuerId: msg.issuerId, message: (err as Error).message })
        }
        break
      case 'removeIssuer':
        issuers.delete(msg.issuerId)
        break
      case 'issue': {
        const results = issueBatch(issuers.get(msg.issuerId), msg.items)
        // Copy each certificate into its own ArrayBuffer and transfer it: a small Buffer is a view into
        // a shared 8 KiB pool, which structured cloning would copy whole.
        const transfer: ArrayBuffer[] = []
        for (const r of results) {
          if (!r.ok) continue
          const copy = new Uint8Array(r.der)
          transfer.push(copy.buffer)
          ;(r as { der: Uint8Array }).der = copy
        }
        port.postMessage({ type: 'result', id: msg.id, results } satisfies FromWorker, transfer)
        break
      }
    }
  })
  port.postMessage({ type: 'ready' } satisfies FromWorker)
}

if (!isMainThread && parentPort && (workerData as { role?: string } | null)?.role === WORKER_ROLE) {
  runWorker(parentPort)
}
