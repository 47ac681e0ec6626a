// Shape checks for untrusted evidence, before any cryptography runs: an object with only known fields,
// strings of bounded size. Anything else is refused with ATTESTATION_EVIDENCE_INVALID, never a crash.

import { invalidEvidence } from '../errors.ts'

export const MAX_TOKEN_CHARS = 16 * 1024

export function evidenceObject(
  attestor: string,
  evidence: unknown,
  allowed: readonly string[],
  what = 'evidence',
): Record<string, unknown> {
  if (typeof evidence !== 'object' || evidence === null || Array.isArray(evidence)) {
    throw invalidEvidence(attestor, `must be a JSON object (${what} was ${describe(evidence)})`)
  }
  for (const key of Object.keys(evidence)) {
    if (!allowed.includes(key)) {
      throw invalidEvidence(
        attestor,
        `has an unknown field ${JSON.stringify(key.slice(0, 40))} (known: ${allowed.join(', ')})`,
      )
    }
  }
  return evidence as Record<string, unknown>
}

export function evidenceString(
  attestor: string,
  obj: Record<string, unknown>,
  key: string,
  opts: { max: number; pattern?: RegExp; optional?: boolean; patternHint?: string },
): string | undefined {
  const value = obj[key]
  if (value === undefined && opts.optional) return undefined
  if (typeof value !== 'string')
    throw invalidEvidence(attestor, `field ${key} must be a string (got ${describe(value)})`)
  if (value.length === 0) throw invalidEvidence(attestor, `field ${key} is empty`)
  if (value.length > opts.max) {
    throw invalidEvidence(
      attestor,
      `field ${key} is ${value.length} characters long; at most ${opts.max} are accepted`,
    )
  }
  if (opts.pattern && !opts.pattern.test(value)) {
    throw invalidEvidence(attestor, `field ${key} is not ${opts.patternHint ?? 'in the expected format'}`)
  }
  return value
}

export function requiredString(
  attestor: string,
  obj: Record<string, unknown>,
  key: string,
  opts: { max: number; pattern?: RegExp; patternHint?: string },
): string {
  return evidenceString(attestor, obj, key, opts) as string
}

const BASE64 = /^[A-Za-z0-9+/\r\n]+={0,2}[\r\n]*$/
const BASE64URL = /^[A-Za-z0-9_-]+$/

/** Standard base64 (line breaks allowed, as metadata services return it) to bytes. */
export function base64Field(
  attestor: string,
  obj: Record<string, unknown>,
  key: string,
  max: number,
): Buffer {
  const text = requiredString(attestor, obj, key, { max, pattern: BASE64, patternHint: 'base64' })
  const bytes = Buffer.from(text.replace(/[\r\n]/g, ''), 'base64')
  if (bytes.length === 0) throw invalidEvidence(attestor, `field ${key} decodes to nothing`)
  return bytes
}

export function base64UrlField(
  attestor: string,
  obj: Record<string, unknown>,
  key: string,
  max: number,
): Buffer {
  const text = requiredString(attestor, obj, key, { max, pattern: BASE64URL, patternHint: 'base64url' })
  return Buffer.from(text, 'base64url')
}

/** A compact JWS: three base64url parts. Checked here so garbage never reaches the JWT library. */
export const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : typeof value
}
