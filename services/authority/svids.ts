// Validation of SVID requests (admin minting through the API): SPIFFE ID in the caller's trust domain,
// TTL within the domain's limits, DNS names, audiences, CSR encoding. Signing itself is the authority's.

import { quote, SigilError } from '../errors.ts'
import { validateDnsName } from '../registry/dns-name.ts'
import type { TrustDomainRecord } from '../store/store.ts'
import type { Authority, X509IssueResult } from './authority.ts'
import { pemToDer } from './pem.ts'
import { requireSpiffeId } from './require-spiffe-id.ts'

export interface X509Request {
  csr: string
  spiffeId: string
  ttl?: number
  dnsNames?: string[]
}

export interface JwtRequest {
  spiffeId: string
  audience: string[]
  ttl?: number
}

function decodeCsr(csr: string): Buffer {
  const text = csr.trim()
  if (text.startsWith('-----BEGIN')) {
    try {
      return pemToDer(text)
    } catch {
      throw new SigilError('CSR_MALFORMED', 'csr is not a PEM CERTIFICATE REQUEST; send PEM or base64 DER')
    }
  }
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    throw new SigilError('CSR_MALFORMED', 'csr is neither PEM nor base64 DER')
  }
  return Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64')
}

export function checkTtl(
  ttl: number | undefined,
  fallback: number,
  max: number,
  what: string,
  td: string,
): number {
  const value = ttl ?? fallback
  if (!Number.isInteger(value) || value <= 0) {
    throw new SigilError(
      'TTL_INVALID',
      `${what} ttl must be a positive number of seconds, got ${quote(value)}`,
    )
  }
  if (value > max) {
    throw new SigilError(
      'TTL_TOO_LONG',
      `${what} ttl ${value}s exceeds trust domain ${td}'s maximum of ${max}s; ask for less or raise the domain's limit`,
    )
  }
  return value
}

export class SvidService {
  constructor(
    private readonly authority: Authority,
    readonly maxBatch: number,
  ) {}

  /** Issues one X509-SVID; throws the item's error. */
  async mintX509(td: TrustDomainRecord, req: X509Request): Promise<Extract<X509IssueResult, { ok: true }>> {
    const [result] = await this.mintX509Batch(td, [req], true)
    if (!result!.ok) throw new SigilError(result!.code as 'CSR_MALFORMED', result!.message)
    return result!
  }

  /** Issues a batch; each item succeeds or fails on its own (a bad CSR does not fail its neighbours). */
  async mintX509Batch(
    td: TrustDomainRecord,
    reqs: X509Request[],
    throwOnInvalid = false,
  ): Promise<X509IssueResult[]> {
    if (reqs.length > this.maxBatch) {
      throw new SigilError('BATCH_TOO_LARGE', `a batch holds at most ${this.maxBatch} CSRs; split it`)
    }
    const results: Array<X509IssueResult | undefined> = new Array(reqs.length)
    const valid: Array<{ index: number; item: Parameters<Authority['issueX509']>[1][number] }> = []
    reqs.forEach((req, index) => {
      try {
        requireSpiffeId(req.spiffeId, td.name, 'spiffeId', { workload: true })
        const ttl = checkTtl(
          req.ttl,
          td.settings.x509DefaultTtl,
          td.settings.x509MaxTtl,
          'X509-SVID',
          td.name,
        )
        const dnsNames = req.dnsNames ?? []
        for (const name of dnsNames) validateDnsName(name)
        valid.push({ index, item: { csrDer: decodeCsr(req.csr), spiffeId: req.spiffeId, dnsNames, ttl } })
      } catch (err) {
        if (throwOnInvalid || !(err instanceof SigilError)) throw err
        results[index] = { ok: false, code: err.code, message: err.message }
      }
    })
    if (valid.length > 0) {
      const issued = await this.authority.issueX509(
        td,
        valid.map((v) => v.item),
      )
      issued.forEach((r, i) => {
        results[valid[i]!.index] = r
      })
    }
    return results as X509IssueResult[]
  }

  async mintJwt(td: TrustDomainRecord, req: JwtRequest) {
    requireSpiffeId(req.spiffeId, td.name, 'spiffeId', { workload: true })
    if (req.audience.length === 0 || req.audience.some((a) => a.length === 0 || a.length > 512)) {
      throw new SigilError(
        'AUDIENCE_INVALID',
        'audience must hold 1 or more non-empty strings of at most 512 characters',
      )
    }
    const ttl = checkTtl(req.ttl, td.settings.jwtDefaultTtl, td.settings.jwtMaxTtl, 'JWT-SVID', td.name)
    return this.authority.issueJwt(td, { spiffeId: req.spiffeId, audience: req.audience, ttl })
  }
}
