// SPIFFE ID and trust domain name rules, per the SPIFFE-ID standard (spiffe/spiffe standards/SPIFFE-ID.md).
// Parsing is strict and allocation-light: it runs on every SVID request.

export type SpiffeIdErrorCode =
  | 'SPIFFE_ID_EMPTY'
  | 'SPIFFE_ID_TOO_LONG'
  | 'SPIFFE_ID_INVALID_SCHEME'
  | 'SPIFFE_ID_QUERY_OR_FRAGMENT'
  | 'SPIFFE_ID_PERCENT_ENCODING'
  | 'SPIFFE_ID_EMPTY_SEGMENT'
  | 'SPIFFE_ID_DOT_SEGMENT'
  | 'SPIFFE_ID_TRAILING_SLASH'
  | 'SPIFFE_ID_BAD_CHAR'
  | 'SPIFFE_ID_MISSING_PATH'
  | 'TRUST_DOMAIN_INVALID'

export class SpiffeIdError extends Error {
  override readonly name = 'SpiffeIdError'
  readonly code: SpiffeIdErrorCode

  constructor(code: SpiffeIdErrorCode, message: string) {
    super(message)
    this.code = code
  }
}

export interface SpiffeId {
  trustDomain: string
  /** '' for the trust domain's own ID, else '/seg/seg...'. */
  path: string
}

export interface ParseSpiffeIdOptions {
  /** Reject `spiffe://<td>` (no path): workload SVIDs always name a workload, never the trust domain. */
  requireWorkloadPath?: boolean
}

export const MAX_SPIFFE_ID_BYTES = 2048
export const MAX_TRUST_DOMAIN_BYTES = 255
const SCHEME = 'spiffe://'
const MAX_QUOTED_CHARS = 120

/** JSON-quotes untrusted input for an error message: ASCII only, bounded length, no raw control chars. */
export function quote(value: string): string {
  const clipped = value.length > MAX_QUOTED_CHARS ? value.slice(0, MAX_QUOTED_CHARS) : value
  const quoted = JSON.stringify(clipped).replace(
    /[\u007f-\uffff]/g,
    (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'),
  )
  return value.length > MAX_QUOTED_CHARS ? `${quoted} (truncated, ${value.length} chars)` : quoted
}

function isTrustDomainChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x2e || // .
    c === 0x2d || // -
    c === 0x5f // _
  )
}

function isPathChar(c: number): boolean {
  return isTrustDomainChar(c) || (c >= 0x41 && c <= 0x5a) // plus A-Z
}

function describeChar(s: string, i: number): string {
  const cp = s.codePointAt(i) ?? 0
  return `${quote(String.fromCodePoint(cp))} (U+${cp.toString(16).toUpperCase().padStart(4, '0')}) at index ${i}`
}

// Byte length without allocating; only called once the string is known to be bounded.
function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8')
}

/** Throws TRUST_DOMAIN_INVALID unless `name` is a valid trust domain name (e.g. `example.org`). */
export function validateTrustDomainName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) {
    throw new SpiffeIdError(
      'TRUST_DOMAIN_INVALID',
      'Trust domain name is empty; use a name such as "example.org".',
    )
  }
  // A trust domain is ASCII-only, so UTF-16 length >= byte length for valid names; check chars first.
  if (name.length > MAX_TRUST_DOMAIN_BYTES * 4 || utf8Length(name) > MAX_TRUST_DOMAIN_BYTES) {
    throw new SpiffeIdError(
      'TRUST_DOMAIN_INVALID',
      `Trust domain name ${quote(name)} is ${utf8Length(name)} bytes long; the limit is ${MAX_TRUST_DOMAIN_BYTES} bytes.`,
    )
  }
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    if (isTrustDomainChar(c)) continue
    let hint = 'only lowercase letters, digits, ".", "-" and "_" are allowed'
    if (name.includes('@'))
      hint = 'a trust domain cannot carry user info; remove everything up to and including "@"'
    else if (c === 0x3a) hint = 'a trust domain cannot carry a port; remove ":<port>"'
    else if (c >= 0x41 && c <= 0x5a)
      hint = 'trust domain names must be lowercase; use ' + quote(name.toLowerCase())
    throw new SpiffeIdError(
      'TRUST_DOMAIN_INVALID',
      `Trust domain name ${quote(name)} contains ${describeChar(name, i)}: ${hint}.`,
    )
  }
}

/**
 * Parses and validates a SPIFFE ID such as `spiffe://example.org/ns/prod/sa/api`.
 * Throws SpiffeIdError with a stable code; the message quotes the input safely.
 */
export function parseSpiffeId(id: string, options: ParseSpiffeIdOptions = {}): SpiffeId {
  if (typeof id !== 'string' || id.length === 0) {
    throw new SpiffeIdError(
      'SPIFFE_ID_EMPTY',
      'SPIFFE ID is empty or not a string; expected "spiffe://<trust-domain>/<path>".',
    )
  }
  // Bound the work before scanning: a UTF-16 unit is at most 3 UTF-8 bytes and at least 1.
  if (id.length > MAX_SPIFFE_ID_BYTES || utf8Length(id) > MAX_SPIFFE_ID_BYTES) {
    throw new SpiffeIdError(
      'SPIFFE_ID_TOO_LONG',
      `SPIFFE ID ${quote(id)} is ${utf8Length(id)} bytes long; the limit is ${MAX_SPIFFE_ID_BYTES} bytes. Use a shorter path.`,
    )
  }
  if (!id.startsWith(SCHEME)) {
    const hint = id.toLowerCase().startsWith(SCHEME)
      ? 'the scheme must be lowercase "spiffe://"'
      : 'a SPIFFE ID starts with "spiffe://" followed by the trust domain'
    throw new SpiffeIdError(
      'SPIFFE_ID_INVALID_SCHEME',
      `SPIFFE ID ${quote(id)} has an invalid scheme: ${hint}.`,
    )
  }
  const q = id.search(/[?#]/)
  if (q !== -1) {
    throw new SpiffeIdError(
      'SPIFFE_ID_QUERY_OR_FRAGMENT',
      `SPIFFE ID ${quote(id)} contains ${describeChar(id, q)}: SPIFFE IDs cannot have a query or fragment; remove it.`,
    )
  }
  const pct = id.indexOf('%')
  if (pct !== -1) {
    throw new SpiffeIdError(
      'SPIFFE_ID_PERCENT_ENCODING',
      `SPIFFE ID ${quote(id)} contains percent-encoding at index ${pct}: SPIFFE IDs cannot be percent-encoded; ` +
        'use only letters, digits, ".", "-" and "_" in path segments.',
    )
  }

  const slash = id.indexOf('/', SCHEME.length)
  const trustDomain = slash === -1 ? id.slice(SCHEME.length) : id.slice(SCHEME.length, slash)
  const path = slash === -1 ? '' : id.slice(slash)
  try {
    validateTrustDomainName(trustDomain)
  } catch (err) {
    if (err instanceof SpiffeIdError) {
      throw new SpiffeIdError(err.code, `SPIFFE ID ${quote(id)}: ${err.message}`)
    }
    throw err
  }

  if (path === '') {
    if (options.requireWorkloadPath) {
      throw new SpiffeIdError(
        'SPIFFE_ID_MISSING_PATH',
        `SPIFFE ID ${quote(id)} names the trust domain itself; a workload ID needs a path such as "${SCHEME}${trustDomain}/ns/default/sa/app".`,
      )
    }
    return { trustDomain, path }
  }

  // path starts with '/'; walk segments between slashes.
  let segStart = 1
  for (let i = 1; i <= path.length; i++) {
    if (i < path.length && path.charCodeAt(i) !== 0x2f) {
      const c = path.charCodeAt(i)
      if (!isPathChar(c)) {
        throw new SpiffeIdError(
          'SPIFFE_ID_BAD_CHAR',
          `SPIFFE ID ${quote(id)} contains ${describeChar(id, slash + i)}: path segments may contain only ` +
            'letters, digits, ".", "-" and "_".',
        )
      }
      continue
    }
    const len = i - segStart
    if (len === 0) {
      if (i === path.length) {
        throw new SpiffeIdError(
          'SPIFFE_ID_TRAILING_SLASH',
          `SPIFFE ID ${quote(id)} ends with "/"; remove the trailing slash.`,
        )
      }
      throw new SpiffeIdError(
        'SPIFFE_ID_EMPTY_SEGMENT',
        `SPIFFE ID ${quote(id)} contains an empty path segment ("//") at index ${slash + i}; remove the extra slash.`,
      )
    }
    if (
      path.charCodeAt(segStart) === 0x2e &&
      (len === 1 || (len === 2 && path.charCodeAt(segStart + 1) === 0x2e))
    ) {
      throw new SpiffeIdError(
        'SPIFFE_ID_DOT_SEGMENT',
        `SPIFFE ID ${quote(id)} contains a ${quote(path.slice(segStart, i))} path segment; ` +
          'relative segments are not allowed, write the path out in full.',
      )
    }
    segStart = i + 1
  }
  return { trustDomain, path }
}

/** True when `id` is a valid SPIFFE ID whose trust domain is exactly `trustDomain`. */
export function isSpiffeIdInTrustDomain(id: string, trustDomain: string): boolean {
  try {
    return parseSpiffeId(id).trustDomain === trustDomain
  } catch (err) {
    if (err instanceof SpiffeIdError) return false
    throw err
  }
}
