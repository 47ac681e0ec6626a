// Agent-side node attestation errors. A configuration of the wrong shape is misuse (TypeError); a
// metadata service or token file that fails at run time is an EvidenceError the agent reports and
// retries. Messages name the source (URL, path), never a token.

export type EvidenceErrorCode = 'ATTESTATION_EVIDENCE_UNAVAILABLE' | 'ATTESTATION_CHALLENGE_INVALID'

export class EvidenceError extends Error {
  readonly code: EvidenceErrorCode

  constructor(code: EvidenceErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'EvidenceError'
    this.code = code
  }
}

export function unavailable(message: string, cause?: unknown): EvidenceError {
  return new EvidenceError(
    'ATTESTATION_EVIDENCE_UNAVAILABLE',
    message,
    cause === undefined ? undefined : { cause },
  )
}
