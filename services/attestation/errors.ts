// Node attestation's error codes, in the shape of services/errors.ts (`codes`), to be merged there.
// Messages name the check that failed and for which node (instance, cluster, tenant), so an operator can
// act on them; they never carry a token, a signature or a key.

export interface AttestationErrorDefinition {
  code: string
  status: number
}

function def(code: string, status: number): AttestationErrorDefinition {
  return { code, status }
}

export const attestationCodes = {
  /** The attestor name is not one this server knows. */
  ATTESTOR_UNKNOWN: def('ATTESTOR_UNKNOWN', 400),
  /** The trust domain has no (usable) configuration for this attestor. */
  ATTESTOR_NOT_ENABLED: def('ATTESTOR_NOT_ENABLED', 403),
  /** An attestor's per-trust-domain configuration does not match its schema. */
  ATTESTATION_CONFIG_INVALID: def('ATTESTATION_CONFIG_INVALID', 400),
  /** The evidence is not even well-formed (wrong types, unknown fields, too large). */
  ATTESTATION_EVIDENCE_INVALID: def('ATTESTATION_EVIDENCE_INVALID', 400),
  /** The evidence is well-formed but a check failed (signature, issuer, audience, expiry, policy). */
  ATTESTATION_FAILED: def('ATTESTATION_FAILED', 401),
  /** The evidence, or the node it proves, was already used for an attestation that must stay single. */
  ATTESTATION_REPLAYED: def('ATTESTATION_REPLAYED', 401),
  /** A service the verification depends on (JWKS, EC2, TokenReview) did not answer usefully. */
  ATTESTATION_UPSTREAM_UNAVAILABLE: def('ATTESTATION_UPSTREAM_UNAVAILABLE', 503),
} as const satisfies Record<string, AttestationErrorDefinition>

export type AttestationErrorCode = keyof typeof attestationCodes

/** A refused attestation. Same constructor shape as SigilError, so merging is a rename. */
export class AttestationError extends Error {
  readonly code: AttestationErrorCode
  readonly status: number

  constructor(code: AttestationErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'AttestationError'
    this.code = code
    this.status = attestationCodes[code].status
  }
}

/** JSON-quotes untrusted input for a message: bounded, control characters escaped. */
export function quote(value: unknown, max = 80): string {
  const text = typeof value === 'string' ? value : String(value)
  const clipped = text.length > max ? `${text.slice(0, max)}…` : text
  return JSON.stringify(clipped)
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
