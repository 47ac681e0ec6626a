// The trust service's error registry. Every error a client can see has a stable code, an HTTP status
// and a message written for the operator who must fix the problem. test/services/errors.test.ts checks
// that every key equals its code, so a code can never drift from its name.

export interface ErrorDefinition {
  code: string
  status: number
}

function def(code: string, status: number): ErrorDefinition {
  return { code, status }
}

export const codes = {
  // Request shape
  BAD_REQUEST: def('BAD_REQUEST', 400),
  INVALID_JSON: def('INVALID_JSON', 400),
  VALIDATION_FAILED: def('VALIDATION_FAILED', 400),
  UNKNOWN_FIELD: def('UNKNOWN_FIELD', 400),
  BODY_TOO_LARGE: def('BODY_TOO_LARGE', 413),
  UNSUPPORTED_MEDIA_TYPE: def('UNSUPPORTED_MEDIA_TYPE', 415),
  NOT_FOUND: def('NOT_FOUND', 404),
  METHOD_NOT_ALLOWED: def('METHOD_NOT_ALLOWED', 405),
  RATE_LIMITED: def('RATE_LIMITED', 429),
  // Authentication and authorization
  UNAUTHENTICATED: def('UNAUTHENTICATED', 401),
  TOKEN_INVALID: def('TOKEN_INVALID', 401),
  TOKEN_EXPIRED: def('TOKEN_EXPIRED', 401),
  FORBIDDEN: def('FORBIDDEN', 403),
  // Console sign-in and sessions
  SESSION_INVALID: def('SESSION_INVALID', 401),
  SESSION_EXPIRED: def('SESSION_EXPIRED', 401),
  CSRF_TOKEN_INVALID: def('CSRF_TOKEN_INVALID', 403),
  CROSS_ORIGIN_REFUSED: def('CROSS_ORIGIN_REFUSED', 403),
  SIGN_IN_FAILED: def('SIGN_IN_FAILED', 401),
  SIGN_IN_NOT_CONFIGURED: def('SIGN_IN_NOT_CONFIGURED', 404),
  NO_ROLE: def('NO_ROLE', 403),
  OIDC_UNAVAILABLE: def('OIDC_UNAVAILABLE', 503),
  // Trust domains
  TRUST_DOMAIN_INVALID: def('TRUST_DOMAIN_INVALID', 400),
  TRUST_DOMAIN_EXISTS: def('TRUST_DOMAIN_EXISTS', 409),
  TRUST_DOMAIN_NOT_FOUND: def('TRUST_DOMAIN_NOT_FOUND', 404),
  SETTINGS_INVALID: def('SETTINGS_INVALID', 400),
  // SPIFFE IDs
  SPIFFE_ID_INVALID: def('SPIFFE_ID_INVALID', 400),
  SPIFFE_ID_FOREIGN_TRUST_DOMAIN: def('SPIFFE_ID_FOREIGN_TRUST_DOMAIN', 400),
  // Issuance
  CSR_MALFORMED: def('CSR_MALFORMED', 400),
  CSR_SIGNATURE_INVALID: def('CSR_SIGNATURE_INVALID', 400),
  CSR_UNSUPPORTED_KEY: def('CSR_UNSUPPORTED_KEY', 400),
  TTL_INVALID: def('TTL_INVALID', 400),
  TTL_TOO_LONG: def('TTL_TOO_LONG', 400),
  AUDIENCE_INVALID: def('AUDIENCE_INVALID', 400),
  DNS_NAME_INVALID: def('DNS_NAME_INVALID', 400),
  BATCH_TOO_LARGE: def('BATCH_TOO_LARGE', 400),
  // Registration entries
  ENTRY_INVALID: def('ENTRY_INVALID', 400),
  SELECTOR_INVALID: def('SELECTOR_INVALID', 400),
  ENTRY_EXISTS: def('ENTRY_EXISTS', 409),
  ENTRY_NOT_FOUND: def('ENTRY_NOT_FOUND', 404),
  ENTRY_PARENT_NOT_FOUND: def('ENTRY_PARENT_NOT_FOUND', 400),
  // Join tokens
  JOIN_TOKEN_NOT_FOUND: def('JOIN_TOKEN_NOT_FOUND', 404),
  JOIN_TOKEN_EXPIRED: def('JOIN_TOKEN_EXPIRED', 401),
  // API tokens
  API_TOKEN_NOT_FOUND: def('API_TOKEN_NOT_FOUND', 404),
  GRANT_INVALID: def('GRANT_INVALID', 400),
  // Agents and node attestation
  ATTESTOR_UNKNOWN: def('ATTESTOR_UNKNOWN', 400),
  ATTESTATION_FAILED: def('ATTESTATION_FAILED', 401),
  ATTESTATION_REPLAYED: def('ATTESTATION_REPLAYED', 401),
  ATTESTATION_CONFIG_INVALID: def('ATTESTATION_CONFIG_INVALID', 400),
  ATTESTOR_NOT_ENABLED: def('ATTESTOR_NOT_ENABLED', 403),
  ATTESTATION_EVIDENCE_INVALID: def('ATTESTATION_EVIDENCE_INVALID', 400),
  ATTESTATION_UPSTREAM_UNAVAILABLE: def('ATTESTATION_UPSTREAM_UNAVAILABLE', 503),
  AGENT_NOT_FOUND: def('AGENT_NOT_FOUND', 404),
  AGENT_BANNED: def('AGENT_BANNED', 403),
  AGENT_EXISTS: def('AGENT_EXISTS', 409),
  AGENT_SVID_SUPERSEDED: def('AGENT_SVID_SUPERSEDED', 401),
  // Policy
  POLICY_INVALID: def('POLICY_INVALID', 400),
  POLICY_VERSION_CONFLICT: def('POLICY_VERSION_CONFLICT', 409),
  // Flows
  FLOW_INVALID: def('FLOW_INVALID', 400),
  // Federation
  TUNNEL_INVALID: def('TUNNEL_INVALID', 400),
  TUNNEL_EXISTS: def('TUNNEL_EXISTS', 409),
  TUNNEL_NOT_FOUND: def('TUNNEL_NOT_FOUND', 404),
  FEDERATION_INVALID: def('FEDERATION_INVALID', 400),
  FEDERATION_EXISTS: def('FEDERATION_EXISTS', 409),
  FEDERATION_NOT_FOUND: def('FEDERATION_NOT_FOUND', 404),
  FEDERATION_REFRESH_FAILED: def('FEDERATION_REFRESH_FAILED', 502),
  // Server
  NOT_READY: def('NOT_READY', 503),
  INTERNAL: def('INTERNAL', 500),
} as const satisfies Record<string, ErrorDefinition>

export type ErrorCode = keyof typeof codes

/**
 * A domain error with a stable code: the API turns it into `{ error: { code, message } }`, plus
 * `details` (where in the input the problem is, say) when the error carries them.
 */
export class SigilError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly details: Record<string, unknown> | undefined

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'SigilError'
    this.code = code
    this.status = codes[code].status
    this.details = options?.details
  }
}

export function sigilError(code: ErrorCode, message: string, cause?: unknown): SigilError {
  return new SigilError(code, message, cause === undefined ? undefined : { cause })
}

/** Quotes untrusted input for an error message: never interpreted, control characters escaped. */
export function quote(value: unknown, max = 120): string {
  const text = typeof value === 'string' ? value : String(value)
  const clipped = text.length > max ? `${text.slice(0, max)}…` : text
  return JSON.stringify(clipped)
}
