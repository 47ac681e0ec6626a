// Trust domains are Sigil's tenants. Creating one creates its root CA in the same atomic store write,
// so a trust domain never exists without an authority.

import type { Authority } from '../authority/authority.ts'
import { SpiffeIdError, validateTrustDomainName } from '../authority/spiffe-id.ts'
import type { Clock } from '../clock.ts'
import { quote, SigilError } from '../errors.ts'
import type { PolicyService } from '../policy/policy-service.ts'
import {
  type Store,
  StoreConflictError,
  StoreMissingTrustDomainError,
  type TrustDomainRecord,
  type TrustDomainSettings,
} from '../store/store.ts'

export type SettingsInput = Partial<TrustDomainSettings>

const KEY_TYPES = ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072'] as const

/** A write that found its trust domain deleted meanwhile is TRUST_DOMAIN_NOT_FOUND; anything else as is. */
export function trustDomainGone(err: unknown): unknown {
  if (!(err instanceof StoreMissingTrustDomainError)) return err
  return new SigilError('TRUST_DOMAIN_NOT_FOUND', `trust domain ${quote(err.trustDomain)} does not exist`, {
    cause: err,
  })
}

export class TrustDomainService {
  constructor(
    private readonly store: Store,
    private readonly authority: Authority,
    private readonly clock: Clock,
    private readonly defaults: Omit<TrustDomainSettings, 'policyMode'>,
    private readonly policies: PolicyService,
  ) {}

  static validateName(name: string): void {
    try {
      validateTrustDomainName(name)
    } catch (err) {
      if (err instanceof SpiffeIdError) {
        throw new SigilError(
          'TRUST_DOMAIN_INVALID',
          `trust domain name ${quote(name)} is invalid: ${err.message}`,
          {
            cause: err,
          },
        )
      }
      throw err
    }
  }

  async create(name: string, input: SettingsInput = {}): Promise<TrustDomainRecord> {
    TrustDomainService.validateName(name)
    const settings = this.#settings({ ...this.defaults, policyMode: 'baseline' }, input)
    if (await this.store.getTrustDomain(name)) throw this.#exists(name)
    const root = await this.authority.createRoot(name, settings.keyType, settings.caTtl)
    const record: TrustDomainRecord = { name, createdAt: this.clock.now(), settings }
    try {
      await this.store.createTrustDomain(record, root)
    } catch (err) {
      if (err instanceof StoreConflictError) throw this.#exists(name)
      throw err
    }
    // Prepare this process's intermediate and JWT key now, so the new bundle already holds a JWT key.
    await this.authority.status(record)
    return record
  }

  list(): Promise<TrustDomainRecord[]> {
    return this.store.listTrustDomains()
  }

  async get(name: string): Promise<TrustDomainRecord> {
    const td = await this.store.getTrustDomain(name)
    if (!td) {
      throw new SigilError(
        'TRUST_DOMAIN_NOT_FOUND',
        `trust domain ${quote(name)} does not exist; list them with \`sigil trust-domain list\``,
      )
    }
    return td
  }

  /**
   * Changes the settings. The network policy is the one source of truth for the policy mode: a
   * policyMode that differs from the running policy's writes a new policy version (by `actor`).
   */
  async updateSettings(name: string, input: SettingsInput, actor: string): Promise<TrustDomainRecord> {
    const td = await this.get(name)
    if (input.keyType !== undefined && input.keyType !== td.settings.keyType) {
      throw new SigilError(
        'SETTINGS_INVALID',
        'keyType cannot change after a trust domain is created (its root CA already exists); create a new trust domain instead',
      )
    }
    const settings = this.#settings(td.settings, input)
    if (input.policyMode !== undefined) await this.policies.setMode(td, input.policyMode, actor)
    const updated = await this.store.updateTrustDomainSettings(name, settings)
    if (!updated) return this.get(name)
    return updated
  }

  async delete(name: string): Promise<void> {
    const deleted = await this.store.deleteTrustDomain(name)
    if (!deleted) await this.get(name)
    this.authority.forget(name)
  }

  #exists(name: string): SigilError {
    return new SigilError(
      'TRUST_DOMAIN_EXISTS',
      `trust domain ${quote(name)} already exists; choose another name`,
    )
  }

  #settings(base: TrustDomainSettings, input: SettingsInput): TrustDomainSettings {
    const s: TrustDomainSettings = { ...base }
    for (const [key, value] of Object.entries(input)) {
      if (value !== undefined) (s as unknown as Record<string, unknown>)[key] = value
    }
    if (!KEY_TYPES.includes(s.keyType)) {
      throw new SigilError('SETTINGS_INVALID', `keyType must be one of ${KEY_TYPES.join(', ')}`)
    }
    const ttls = ['caTtl', 'x509DefaultTtl', 'x509MaxTtl', 'jwtDefaultTtl', 'jwtMaxTtl'] as const
    for (const key of ttls) {
      if (!Number.isInteger(s[key]) || s[key] <= 0) {
        throw new SigilError('SETTINGS_INVALID', `${key} must be a positive number of seconds`)
      }
    }
    if (s.x509DefaultTtl > s.x509MaxTtl) {
      throw new SigilError('SETTINGS_INVALID', 'x509DefaultTtl must not exceed x509MaxTtl')
    }
    if (s.jwtDefaultTtl > s.jwtMaxTtl)
      throw new SigilError('SETTINGS_INVALID', 'jwtDefaultTtl must not exceed jwtMaxTtl')
    if (s.x509MaxTtl * 2 > s.caTtl) {
      throw new SigilError(
        'SETTINGS_INVALID',
        'caTtl must be at least twice x509MaxTtl so SVIDs outlive CA rotation',
      )
    }
    if (s.policyMode !== 'baseline' && s.policyMode !== 'explicit') {
      throw new SigilError('SETTINGS_INVALID', 'policyMode must be baseline or explicit')
    }
    return s
  }
}
