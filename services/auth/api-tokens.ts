// Admin API tokens: bearer tokens stored as sha256 hashes, each with grants (trust domain, role).
// A grant on '*' covers every trust domain; an admin grant on '*' may also create trust domains and
// grant anything. Anyone else may only grant roles they hold themselves.

import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import type { Clock } from '../clock.ts'
import { quote, SigilError } from '../errors.ts'
import { hashToken } from '../registry/join-tokens.ts'
import type { ApiTokenRecord, Grant, Role, Store } from '../store/store.ts'
import { TrustDomainService } from '../tenancy/trust-domains.ts'

export interface Principal {
  tokenId: string
  name: string
  grants: Grant[]
  /** How the audit log names a principal that is not an API token (a console user signed in by SSO). */
  actor?: string
}

const TOKEN_PATTERN = /^sat_[A-Za-z0-9_-]{43}$/

export function roleOn(principal: Principal, trustDomain: string): Role | undefined {
  let best: Role | undefined
  for (const g of principal.grants) {
    if (g.trustDomain !== '*' && g.trustDomain !== trustDomain) continue
    if (g.role === 'admin') return 'admin'
    best = 'viewer'
  }
  return best
}

export function isInstallationAdmin(principal: Principal): boolean {
  return principal.grants.some((g) => g.trustDomain === '*' && g.role === 'admin')
}

export function canSee(principal: Principal, trustDomain: string): boolean {
  return roleOn(principal, trustDomain) !== undefined
}

export class ApiTokenService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /** Creates a token; the secret is returned once and only its hash is stored. */
  async create(
    creator: Principal | undefined,
    input: { name: string; grants: Grant[]; ttl?: number },
  ): Promise<{ token: string; record: ApiTokenRecord }> {
    if (input.grants.length === 0) throw new SigilError('GRANT_INVALID', 'a token needs at least one grant')
    for (const g of input.grants) {
      if (g.trustDomain !== '*') TrustDomainService.validateName(g.trustDomain)
      if (g.role !== 'admin' && g.role !== 'viewer')
        throw new SigilError('GRANT_INVALID', 'role must be admin or viewer')
      if (creator && !isInstallationAdmin(creator)) {
        const held = roleOn(creator, g.trustDomain === '*' ? '\u0000' : g.trustDomain)
        if (g.trustDomain === '*' || held !== 'admin') {
          throw new SigilError(
            'FORBIDDEN',
            `you cannot grant ${g.role} on ${quote(g.trustDomain)}: only an admin of that trust domain can`,
          )
        }
      }
    }
    if (input.ttl !== undefined && (!Number.isInteger(input.ttl) || input.ttl <= 0)) {
      throw new SigilError('TTL_INVALID', 'ttl must be a positive number of seconds')
    }
    const token = `sat_${randomBytes(32).toString('base64url')}`
    const now = this.clock.now()
    const record: ApiTokenRecord = {
      id: randomUUID(),
      tokenHash: hashToken(token),
      name: input.name,
      grants: input.grants,
      createdAt: now,
      expiresAt: input.ttl ? now + input.ttl * 1000 : 0,
    }
    await this.store.createApiToken(record)
    return { token, record }
  }

  /** Resolves a bearer token to a principal, or throws UNAUTHENTICATED / TOKEN_INVALID / TOKEN_EXPIRED. */
  async authenticate(token: string | undefined): Promise<Principal> {
    if (token === '') {
      throw new SigilError('TOKEN_INVALID', 'the Authorization header must be `Bearer <token>`')
    }
    if (!token) {
      throw new SigilError(
        'UNAUTHENTICATED',
        'missing bearer token: send `Authorization: Bearer <token>` (the bootstrap admin token is in .sigil/admin.token)',
      )
    }
    if (!TOKEN_PATTERN.test(token))
      throw new SigilError('TOKEN_INVALID', 'bearer token is malformed or unknown')
    return this.authenticateHash(hashToken(token))
  }

  /** As authenticate(), for a token known by its hash (a console session signed in with a token). */
  async authenticateHash(hash: string): Promise<Principal> {
    if (!/^[0-9a-f]{64}$/.test(hash))
      throw new SigilError('TOKEN_INVALID', 'bearer token is malformed or unknown')
    const record = await this.store.findApiTokenByHash(hash)
    if (!record || !timingSafeEqual(Buffer.from(record.tokenHash, 'hex'), Buffer.from(hash, 'hex'))) {
      throw new SigilError('TOKEN_INVALID', 'bearer token is malformed or unknown')
    }
    if (record.expiresAt !== 0 && record.expiresAt <= this.clock.now()) {
      throw new SigilError(
        'TOKEN_EXPIRED',
        `bearer token ${quote(record.name)} expired; ask an admin for a new one`,
      )
    }
    return { tokenId: record.id, name: record.name, grants: record.grants }
  }

  async list(principal: Principal): Promise<ApiTokenRecord[]> {
    const all = await this.store.listApiTokens()
    if (isInstallationAdmin(principal)) return all
    return all.filter(
      (t) =>
        t.id === principal.tokenId || t.grants.every((g) => roleOn(principal, g.trustDomain) === 'admin'),
    )
  }

  async revoke(principal: Principal, id: string): Promise<void> {
    const visible = await this.list(principal)
    const target = visible.find((t) => t.id === id)
    if (!target || !(await this.store.deleteApiToken(id))) {
      throw new SigilError(
        'API_TOKEN_NOT_FOUND',
        `API token ${quote(id)} does not exist or is not yours to revoke`,
      )
    }
  }
}
