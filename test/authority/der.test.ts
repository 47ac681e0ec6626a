import t from 'tap'
import {
  DerError,
  decodeOid,
  decodeTime,
  encodeLength,
  encodeOid,
  encodeSmallInteger,
  encodeTime,
  encodeTlv,
  encodeUnsignedInteger,
  readChildren,
  readTlv,
  TAG,
} from '../../services/authority/der.ts'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

t.test('lengths use the shortest form', async (t) => {
  t.equal(hex(encodeLength(0)), '00')
  t.equal(hex(encodeLength(127)), '7f')
  t.equal(hex(encodeLength(128)), '8180')
  t.equal(hex(encodeLength(255)), '81ff')
  t.equal(hex(encodeLength(256)), '820100')
  t.equal(hex(encodeLength(65535)), '82ffff')
  t.equal(hex(encodeLength(65536)), '83010000')
  for (const n of [0, 1, 127, 128, 200, 255, 256, 1000, 65535, 65536, 70000]) {
    const tlv = encodeTlv(TAG.OCTET_STRING, Buffer.alloc(n, 7))
    t.equal(hex(tlv.subarray(1, 1 + encodeLength(n).length)), hex(encodeLength(n)), `header for ${n}`)
    const r = readTlv(tlv, 0)
    t.same(
      [r.tag, r.contentEnd - r.contentStart, r.end],
      [TAG.OCTET_STRING, n, tlv.length],
      `round trip ${n}`,
    )
  }
  t.equal(
    hex(encodeTlv(TAG.SEQUENCE, Buffer.from([1]), Buffer.from([2, 3]))),
    '3003010203',
    'parts are concatenated',
  )
})

t.test('readTlv rejects what DER forbids', async (t) => {
  const bad: Array<[string, number[]]> = [
    ['empty', []],
    ['tag only', [0x04]],
    ['indefinite length', [0x30, 0x80, 0x00, 0x00]],
    ['long form for a short length', [0x04, 0x81, 0x05, 1, 2, 3, 4, 5]],
    ['leading zero in length', [0x04, 0x82, 0x00, 0x80, ...new Array(128).fill(0)]],
    ['length of length 5', [0x04, 0x85, 0, 0, 0, 0, 1, 0]],
    ['content overruns', [0x04, 0x05, 1, 2]],
    ['length bytes truncated', [0x04, 0x82, 0x01]],
    ['high tag number', [0x1f, 0x81, 0x01, 0x00]],
  ]
  for (const [what, bytes] of bad) t.throws(() => readTlv(Uint8Array.from(bytes), 0), DerError, what)
  t.throws(() => readTlv(Uint8Array.from([0x04, 0x02, 1, 2]), 0, 3), DerError, 'limit is respected')
  const r = readTlv(Uint8Array.from([0xff, 0x30, 0x03, 0x02, 0x01, 0x05, 0xee]), 1, 6)
  t.same(
    { tag: r.tag, start: r.start, headerLength: r.headerLength, contentStart: r.contentStart, end: r.end },
    { tag: 0x30, start: 1, headerLength: 2, contentStart: 3, end: 6 },
  )
  const seq = Uint8Array.from([0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0x09])
  t.same(
    readChildren(seq, readTlv(seq, 0)).map((c) => c.tag),
    [0x02, 0x04],
  )
  t.throws(
    () =>
      readChildren(
        Uint8Array.from([0x30, 0x03, 0x02, 0x02, 0x05]),
        readTlv(Uint8Array.from([0x30, 0x03, 0x02, 0x02, 0x05]), 0),
      ),
    DerError,
    'child overruns parent',
  )
})

t.test('unsigned INTEGERs are minimal and positive', async (t) => {
  t.equal(hex(encodeUnsignedInteger(Uint8Array.from([0x00]))), '020100')
  t.equal(hex(encodeUnsignedInteger(Uint8Array.from([]))), '020100')
  t.equal(hex(encodeUnsignedInteger(Uint8Array.from([0x7f]))), '02017f')
  t.equal(hex(encodeUnsignedInteger(Uint8Array.from([0x80]))), '02020080')
  t.equal(hex(encodeUnsignedInteger(Uint8Array.from([0x00, 0x00, 0x01]))), '020101')
  t.equal(hex(encodeUnsignedInteger(Uint8Array.from([0x00, 0x80]))), '02020080')
  t.equal(hex(encodeUnsignedInteger(Buffer.from('ff'.repeat(16), 'hex'))), `021100${'ff'.repeat(16)}`)
  t.equal(hex(encodeSmallInteger(0)), '020100')
  t.equal(hex(encodeSmallInteger(128)), '02020080')
  t.equal(hex(encodeSmallInteger(65537)), '0203010001')
})

t.test('OIDs', async (t) => {
  const vectors: Array<[string, string]> = [
    ['1.2.840.10045.2.1', '06072a8648ce3d0201'],
    ['1.2.840.113549.1.1.11', '06092a864886f70d01010b'],
    ['2.5.29.17', '0603551d11'],
    ['1.3.132.0.34', '06052b81040022'],
    ['2.16.840.1.101.3.4.2.1', '0609608648016503040201'],
    ['2.999.3', '0603883703'],
  ]
  for (const [dotted, der] of vectors) {
    t.equal(hex(encodeOid(dotted)), der, dotted)
    t.equal(decodeOid(Buffer.from(der, 'hex').subarray(2)), dotted, `decode ${dotted}`)
  }
  for (const bad of ['', '1', '3.1', '1.40', '1..2', '1.2.a', '01.2'])
    t.throws(() => encodeOid(bad), DerError, bad)
  t.throws(() => decodeOid(Uint8Array.from([0x2a, 0x86])), DerError, 'unterminated')
  t.throws(() => decodeOid(Uint8Array.from([0x2a, 0x80, 0x01])), DerError, 'non-minimal')
})

t.test('times follow RFC 5280: UTCTime through 2049, GeneralizedTime from 2050', async (t) => {
  const cases: Array<[string, number, string]> = [
    ['1950 start', Date.UTC(1950, 0, 1, 0, 0, 0), '170d3530303130313030303030305a'],
    ['2049 end', Date.UTC(2049, 11, 31, 23, 59, 59), '170d3439313233313233353935395a'],
    ['2050 start', Date.UTC(2050, 0, 1, 0, 0, 0), '180f32303530303130313030303030305a'],
    ['1949', Date.UTC(1949, 11, 31, 23, 59, 59), '180f31393439313233313233353935395a'],
  ]
  for (const [what, ms, der] of cases) {
    const enc = encodeTime(ms)
    t.equal(hex(enc), der, what)
    t.equal(decodeTime(enc, readTlv(enc, 0)), ms, `${what} round trip`)
  }
  const withMs = Date.UTC(2030, 5, 15, 12, 30, 45, 999)
  t.equal(
    Buffer.from(encodeTime(withMs)).toString('latin1').slice(2),
    '300615123045Z',
    'milliseconds truncated',
  )
  t.throws(() => encodeTime(Number.NaN), DerError)
  t.throws(() => encodeTime(Date.UTC(10000, 0, 1)), DerError)
  const bad = encodeTlv(TAG.UTC_TIME, Buffer.from('491301000000Z'))
  t.throws(() => decodeTime(bad, readTlv(bad, 0)), DerError, 'month 13')
  const frac = encodeTlv(TAG.GENERALIZED_TIME, Buffer.from('20500101000000.5Z'))
  t.throws(() => decodeTime(frac, readTlv(frac, 0)), DerError, 'fractional seconds')
})
