// Per-trust-domain attestor configuration: validated against the attestor's JSON schema (unknown keys
// refused) and turned once into a prepared, typed value (parsed certificates, JWKS caches). Prepared
// values are cached by the configuration's content, so a trust domain's settings read fresh from the
// store on every request still share one JWKS cache.

import { Ajv, type ErrorObject } from 'ajv'
import { AttestationError } from '../errors.ts'

const ajv = new Ajv({ allErrors: false, strict: true })
const MAX_PREPARED = 64

export function describeAjvError(attestor: string, error: ErrorObject | undefined): string {
  if (!error) return `${attestor} configuration is invalid`
  const where = `nodeAttestors.${attestor}${error.instancePath.replace(/\//g, '.')}`
  if (error.keyword === 'additionalProperties') {
    const extra = (error.params as { additionalProperty: string }).additionalProperty
    return `${where} has an unknown key ${JSON.stringify(extra)}`
  }
  if (error.propertyName !== undefined) {
    return `${where} has a key ${JSON.stringify(error.propertyName)} that ${error.message ?? 'is invalid'}`
  }
  return `${where} ${error.message ?? 'is invalid'}`
}

export class PreparedConfigs<T> {
  readonly #validate: ReturnType<typeof ajv.compile>
  readonly #cache = new Map<string, T>()

  constructor(
    readonly attestor: string,
    readonly schema: Record<string, unknown>,
    // biome-ignore lint/suspicious/noExplicitAny: the schema validated `config`; each attestor names its type
    private readonly prepare: (config: any) => T,
  ) {
    this.#validate = ajv.compile(schema)
  }

  /** Validates and prepares; throws ATTESTATION_CONFIG_INVALID with the offending key. */
  validate(raw: unknown): T {
    if (!this.#validate(raw)) {
      throw new AttestationError(
        'ATTESTATION_CONFIG_INVALID',
        describeAjvError(this.attestor, this.#validate.errors?.[0]),
      )
    }
    try {
      return this.prepare(raw)
    } catch (err) {
      if (err instanceof AttestationError) throw err
      throw new AttestationError(
        'ATTESTATION_CONFIG_INVALID',
        `nodeAttestors.${this.attestor}: ${(err as Error).message}`,
        { cause: err },
      )
    }
  }

  /** The prepared configuration of a trust domain, or ATTESTOR_NOT_ENABLED when it has none. */
  get(trustDomain: string, raw: unknown): T {
    if (raw === undefined || raw === null) {
      throw new AttestationError(
        'ATTESTOR_NOT_ENABLED',
        `node attestor ${this.attestor} is not enabled for trust domain ${JSON.stringify(trustDomain)}; an admin enables it in the trust domain's settings (nodeAttestors.${this.attestor})`,
      )
    }
    const key = JSON.stringify(raw)
    const hit = this.#cache.get(key)
    if (hit !== undefined) return hit
    const prepared = this.validate(raw)
    if (this.#cache.size >= MAX_PREPARED) this.#cache.delete(this.#cache.keys().next().value as string)
    this.#cache.set(key, prepared)
    return prepared
  }
}
