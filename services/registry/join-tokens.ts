// Join tokens: single-use secrets an agent presents once to attest. Only their sha256 is stored; the
// token itself is returned once, at creation.

import { createHash, randomBytes } from 'node:crypto'
import { requireSpiffeId } from '../authority/require-spiffe-id.ts'
import type { Clock } from '../clock.ts'
import { quote, SigilError } from '../errors.ts'
import type { JoinTokenRecord, Store, TrustDomainRecord } from '../store/store.ts'

export const JOIN_TOKEN_MAX_TTL = 30 * 24 * 3600
export const JOIN_TOKEN_DEFAULT_TTL = 3600

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

export class JoinTokenService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async create(
    td: TrustDomainRecord,
    input: { ttl?: number; spiffeId?: string },
  ): Promise<{ token: string; record: JoinTokenRecord }> {
    const ttl = input.ttl ?? JOIN_TOKEN_DEFAULT_TTL
    if (!Number.isInteger(ttl) || ttl <= 0)
      throw new SigilError('TTL_INVALID', 'ttl must be a positive number of seconds')
    if (ttl > JOIN_TOKEN_MAX_TTL) {
      throw new SigilError(
        'TTL_TOO_LONG',
        `ttl ${ttl}s exceeds the join token maximum of ${JOIN_TOKEN_MAX_TTL}s (30d)`,
      )
    }
    if (input.spiffeId !== undefined) requireSpiffeId(input.spiffeId, td.name, 'spiffeId', { workload: true })
    const token = `sjt_${randomBytes(24).toString('base64url')}`
    const now = this.clock.now()
    const record: JoinTokenRecord = {
      trustDomain: td.name,
      tokenHash: hashToken(token),
      expiresAt: now + ttl * 1000,
      createdAt: now,
    }
    if (input.spiffeId !== undefined) record.spiffeId = input.spiffeId
    await this.store.createJoinToken(record)
    return { token, record }
  }

  list(td: TrustDomainRecord): Promise<JoinTokenRecord[]> {
    return this.store.listJoinTokens(td.name)
  }

  async revoke(td: TrustDomainRecord, id: string): Promise<void> {
    if (!(await this.store.deleteJoinToken(td.name, id))) {
      throw new SigilError(
        'JOIN_TOKEN_NOT_FOUND',
        `join token ${quote(id)} does not exist (already used, revoked or expired)`,
      )
    }
  }

  /** Consumes a token atomically: of concurrent uses, exactly one succeeds. */
  async consume(td: TrustDomainRecord, token: string): Promise<JoinTokenRecord> {
    const result = await this.store.consumeJoinToken(td.name, hashToken(token), this.clock.now())
    if (result.ok) return result.token
    if (result.reason === 'expired') {
      throw new SigilError(
        'JOIN_TOKEN_EXPIRED',
        'join token expired; create a new one with `sigil token create`',
      )
    }
    throw new SigilError(
      'JOIN_TOKEN_NOT_FOUND',
      'join token is unknown or was already used; create a new one with `sigil token create`',
    )
  }
}
