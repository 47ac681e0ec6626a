// Node attestation's errors: SigilErrors with attestation's codes (registered in services/errors.ts).
// Messages name the check that failed and for which node (instance, cluster, tenant), so an operator can
// act on them; they never carry a token, a signature or a key.

import { type ErrorCode, quote as quoteValue, SigilError } from '../errors.ts'

/** The codes node attestation may answer with (all in services/errors.ts). */
export type AttestationErrorCode = Extract<
  ErrorCode,
  | 'ATTESTOR_UNKNOWN'
  | 'ATTESTOR_NOT_ENABLED'
  | 'ATTESTATION_CONFIG_INVALID'
  | 'ATTESTATION_EVIDENCE_INVALID'
  | 'ATTESTATION_FAILED'
  | 'ATTESTATION_REPLAYED'
  | 'ATTESTATION_UPSTREAM_UNAVAILABLE'
>

/** A refused attestation: a SigilError whose code is one of attestation's. */
export class AttestationError extends SigilError {
  declare readonly code: AttestationErrorCode

  constructor(code: AttestationErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
    this.name = 'AttestationError'
  }
}

/** JSON-quotes untrusted input for a message: bounded, control characters escaped. */
export function quote(value: unknown, max = 80): string {
  return quoteValue(value, max)
}

export function failed(message: string, cause?: unknown): AttestationError {
  return new AttestationError('ATTESTATION_FAILED', message, cause === undefined ? undefined : { cause })
}

export function invalidEvidence(attestor: string, message: string): AttestationError {
  return new AttestationError('ATTESTATION_EVIDENCE_INVALID', `${attestor} evidence ${message}`)
}

export function unavailable(message: string, cause?: unknown): AttestationError {
  return new AttestationError(
    'ATTESTATION_UPSTREAM_UNAVAILABLE',
    message,
    cause === undefined ? undefined : { cause },
  )
}
