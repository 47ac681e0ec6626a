// A minimal DER toolkit for the certificate hot path: encode TLVs, read TLVs strictly, and the few
// primitive encodings X.509 needs. Only single-byte tags (tag number < 31) are supported; nothing on the
// paths that use this module needs more.

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const

/** Context-specific tag byte: [n] constructed (EXPLICIT or constructed IMPLICIT) or primitive. */
export function contextTag(n: number, constructed: boolean): number {
  return (constructed ? 0xa0 : 0x80) | n
}

export class DerError extends Error {
  override readonly name = 'DerError'
}

export function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length])
  if (length <= 0xff) return Buffer.from([0x81, length])
  if (length <= 0xffff) return Buffer.from([0x82, length >> 8, length & 0xff])
  if (length <= 0xffffff) return Buffer.from([0x83, length >> 16, (length >> 8) & 0xff, length & 0xff])
  throw new DerError(`DER length ${length} is too large`)
}

function lengthOfLength(length: number): number {
  if (length < 0x80) return 1
  if (length <= 0xff) return 2
  if (length <= 0xffff) return 3
  if (length <= 0xffffff) return 4
  throw new DerError(`DER length ${length} is too large`)
}

/** Encodes tag || length || concat(parts), with the minimal (DER) length form. */
export function encodeTlv(tag: number, ...parts: Uint8Array[]): Buffer {
  let length = 0
  for (const p of parts) length += p.length
  const ll = lengthOfLength(length)
  const out = Buffer.allocUnsafe(1 + ll + length)
  out[0] = tag
  if (ll === 1) {
    out[1] = length
  } else {
    out[1] = 0x80 | (ll - 1)
    for (let i = ll - 1, v = length; i >= 1; i--, v >>>= 8) out[1 + i] = v & 0xff
  }
  let pos = 1 + ll
  for (const p of parts) {
    out.set(p, pos)
    pos += p.length
  }
  return out
}

export function encodeSequence(...parts: Uint8Array[]): Buffer {
  return encodeTlv(TAG.SEQUENCE, ...parts)
}

export interface Tlv {
  tag: number
  /** Offset of the tag byte. */
  start: number
  headerLength: number
  contentStart: number
  contentEnd: number
  /** Offset just past this element (== contentEnd). */
  end: number
}

/**
 * Reads one DER element at `offset`, which must end at or before `limit`. Rejects what DER forbids:
 * indefinite lengths, non-minimal length encodings, and high tag numbers (unsupported here).
 */
export function readTlv(buf: Uint8Array, offset: number, limit: number = buf.length): Tlv {
  if (offset + 2 > limit) throw new DerError(`truncated DER element at offset ${offset}`)
  const tag = buf[offset]!
  if ((tag & 0x1f) === 0x1f) throw new DerError(`unsupported high tag number at offset ${offset}`)
  const first = buf[offset + 1]!
  let length: number
  let headerLength: number
  if (first < 0x80) {
    length = first
    headerLength = 2
  } else {
    const n = first & 0x7f
    if (n === 0) throw new DerError(`indefinite length at offset ${offset} is not DER`)
    if (n > 4) throw new DerError(`length of length ${n} at offset ${offset} is too large`)
    if (offset + 2 + n > limit) throw new DerError(`truncated DER length at offset ${offset}`)
    if (buf[offset + 2] === 0) throw new DerError(`non-minimal DER length at offset ${offset}`)
    length = 0
    for (let i = 0; i < n; i++) length = length * 256 + buf[offset + 2 + i]!
    if (length < 0x80) throw new DerError(`non-minimal DER length at offset ${offset}`)
    headerLength = 2 + n
  }
  const contentStart = offset + headerLength
  const contentEnd = contentStart + length
  if (contentEnd > limit) throw new DerError(`DER element at offset ${offset} overruns its container`)
  return { tag, start: offset, headerLength, contentStart, contentEnd, end: contentEnd }
}

/** Reads an element and checks its tag. */
export function expectTlv(buf: Uint8Array, offset: number, limit: number, tag: number, what: string): Tlv {
  const tlv = readTlv(buf, offset, limit)
  if (tlv.tag !== tag) {
    throw new DerError(
      `expected ${what} (tag 0x${tag.toString(16)}) at offset ${offset}, found tag 0x${tlv.tag.toString(16)}`,
    )
  }
  return tlv
}

/** All direct children of a constructed element; they must exactly fill its content. */
export function readChildren(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = []
  let pos = parent.contentStart
  while (pos < parent.contentEnd) {
    const child = readTlv(buf, pos, parent.contentEnd)
    out.push(child)
    pos = child.end
  }
  return out
}

/** The full encoding (header and content) of an element, as a view. */
export function tlvBytes(buf: Uint8Array, tlv: Tlv): Uint8Array {
  return buf.subarray(tlv.start, tlv.end)
}

export function tlvContent(buf: Uint8Array, tlv: Tlv): Uint8Array {
  return buf.subarray(tlv.contentStart, tlv.contentEnd)
}

/** INTEGER from a big-endian unsigned magnitude, minimally encoded (leading zeros stripped, 0x00 if MSB set). */
export function encodeUnsignedInteger(bytes: Uint8Array): Buffer {
  let i = 0
  while (i < bytes.length - 1 && bytes[i] === 0) i++
  const magnitude = bytes.length === 0 ? new Uint8Array([0]) : bytes.subarray(i)
  if (magnitude[0]! & 0x80) return encodeTlv(TAG.INTEGER, ZERO, magnitude)
  return encodeTlv(TAG.INTEGER, magnitude)
}
const ZERO = new Uint8Array([0])

export function encodeSmallInteger(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new DerError(`integer ${n} out of range`)
  const bytes: number[] = []
  let v = n
  do {
    bytes.unshift(v & 0xff)
    v = Math.floor(v / 256)
  } while (v > 0)
  return encodeUnsignedInteger(Uint8Array.from(bytes))
}

/** OBJECT IDENTIFIER TLV from dotted form, e.g. '1.2.840.10045.2.1'. */
export function encodeOid(oid: string): Buffer {
  const arcs = oid.split('.').map((a) => {
    if (!/^(0|[1-9][0-9]*)$/.test(a)) throw new DerError(`invalid OID ${JSON.stringify(oid)}`)
    return BigInt(a)
  })
  if (arcs.length < 2 || arcs[0]! > 2n || (arcs[0]! < 2n && arcs[1]! > 39n)) {
    throw new DerError(`invalid OID ${JSON.stringify(oid)}`)
  }
  const out: number[] = []
  const subids = [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)]
  for (const id of subids) {
    const chunk: number[] = [Number(id & 0x7fn)]
    for (let v = id >> 7n; v > 0n; v >>= 7n) chunk.unshift(Number(v & 0x7fn) | 0x80)
    out.push(...chunk)
  }
  return encodeTlv(TAG.OID, Uint8Array.from(out))
}

/** Dotted form of OID content bytes (for messages and tests; matching uses byte comparison). */
export function decodeOid(content: Uint8Array): string {
  if (content.length === 0 || (content[content.length - 1]! & 0x80) !== 0)
    throw new DerError('invalid OID encoding')
  const subids: bigint[] = []
  let v = 0n
  let fresh = true
  for (const b of content) {
    if (fresh && b === 0x80) throw new DerError('non-minimal OID encoding')
    v = (v << 7n) | BigInt(b & 0x7f)
    fresh = (b & 0x80) === 0
    if (fresh) {
      subids.push(v)
      v = 0n
    }
  }
  const first = subids[0]!
  const head = first < 80n ? [first / 40n, first % 40n] : [2n, first - 80n]
  return [...head, ...subids.slice(1)].join('.')
}

function pad(n: number, width: number): string {
  return n.toString().padStart(width, '0')
}

/**
 * X.509 Time for a millisecond timestamp (truncated to whole seconds), per RFC 5280 4.1.2.5:
 * UTCTime for years 1950..2049, GeneralizedTime otherwise, always UTC ('Z') with seconds and no fraction.
 */
export function encodeTime(ms: number): Buffer {
  if (!Number.isFinite(ms)) throw new DerError(`invalid time ${ms}`)
  const d = new Date(Math.floor(ms / 1000) * 1000)
  const year = d.getUTCFullYear()
  if (year < 0 || year > 9999) throw new DerError(`year ${year} cannot be encoded in an X.509 Time`)
  const rest =
    pad(d.getUTCMonth() + 1, 2) +
    pad(d.getUTCDate(), 2) +
    pad(d.getUTCHours(), 2) +
    pad(d.getUTCMinutes(), 2) +
    pad(d.getUTCSeconds(), 2) +
    'Z'
  if (year >= 1950 && year <= 2049)
    return encodeTlv(TAG.UTC_TIME, Buffer.from(pad(year % 100, 2) + rest, 'latin1'))
  return encodeTlv(TAG.GENERALIZED_TIME, Buffer.from(pad(year, 4) + rest, 'latin1'))
}

/** Decodes a UTCTime or GeneralizedTime TLV in the RFC 5280 profile (…Z, whole seconds) to ms. */
export function decodeTime(buf: Uint8Array, tlv: Tlv): number {
  const s = Buffer.from(tlvContent(buf, tlv)).toString('latin1')
  const utc = tlv.tag === TAG.UTC_TIME ? /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s) : null
  const gen = tlv.tag === TAG.GENERALIZED_TIME ? /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s) : null
  const m = utc ?? gen
  if (!m) throw new DerError(`invalid X.509 time ${JSON.stringify(s)}`)
  const yy = Number(m[1])
  const year = utc ? (yy >= 50 ? 1900 + yy : 2000 + yy) : yy
  const [month, day, hour, minute, second] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ]
  // Date.UTC would map years 0..99 to 1900..1999; setUTCFullYear does not.
  const d = new Date(0)
  d.setUTCFullYear(year, month - 1, day)
  d.setUTCHours(hour, minute, second, 0)
  if (d.getUTCMonth() !== month - 1 || d.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
    throw new DerError(`invalid X.509 time ${JSON.stringify(s)}`)
  }
  return d.getTime()
}

export function encodeBitString(bytes: Uint8Array, unusedBits = 0): Buffer {
  return encodeTlv(TAG.BIT_STRING, Uint8Array.of(unusedBits), bytes)
}

export function encodeOctetString(bytes: Uint8Array): Buffer {
  return encodeTlv(TAG.OCTET_STRING, bytes)
}
