import { createPublicKey } from 'node:crypto'
import t from 'tap'
import { CsrError, type CsrErrorCode, parseCsr } from '../../services/authority/csr.ts'
import { encodeSequence, encodeTlv, readChildren, readTlv } from '../../services/authority/der.ts'
import {
  type CsrKind,
  csrParts,
  type OpensslCsrKind,
  opensslCsr,
  peculiarCsr,
  prng,
} from './fixtures/helpers.ts'

function codeOf(input: unknown): CsrErrorCode | 'ACCEPTED' | `NOT_A_CSR_ERROR: ${string}` {
  try {
    parseCsr(input as Uint8Array)
    return 'ACCEPTED'
  } catch (err) {
    return err instanceof CsrError ? err.code : `NOT_A_CSR_ERROR: ${String(err)}`
  }
}

const expectedKeyType = { 'ec-p256': 'ec-p256', 'ec-p384': 'ec-p384', 'rsa-2048': 'rsa' } as const

t.test('valid CSRs from @peculiar/x509 are accepted', async (t) => {
  for (const kind of ['ec-p256', 'ec-p384', 'rsa-2048'] as CsrKind[]) {
    const der = await peculiarCsr(kind)
    const csr = parseCsr(der)
    t.equal(csr.keyType, expectedKeyType[kind], kind)
    const { spki } = csrParts(der)
    t.ok(csr.spki.equals(der.subarray(spki.start, spki.end)), `${kind}: SPKI is copied verbatim`)
    t.ok(
      csr.publicKey.equals(createPublicKey({ key: csr.spki, format: 'der', type: 'spki' })),
      `${kind}: publicKey matches the SPKI`,
    )
  }
})

t.test('valid CSRs from the openssl binary are accepted', async (t) => {
  const cases: Array<[OpensslCsrKind, string]> = [
    ['ec-p256', 'ec-p256'],
    ['ec-p384', 'ec-p384'],
    ['rsa-2048', 'rsa'],
    ['rsa-2048-pss', 'rsa'],
  ]
  for (const [kind, keyType] of cases) {
    const csr = parseCsr(opensslCsr(kind))
    t.equal(csr.keyType, keyType, kind)
  }
})

t.test('unsupported keys are rejected with CSR_UNSUPPORTED_KEY', async (t) => {
  for (const kind of ['rsa-1024', 'ec-p521', 'ec-secp256k1', 'ed25519'] as OpensslCsrKind[]) {
    t.equal(codeOf(opensslCsr(kind)), 'CSR_UNSUPPORTED_KEY', kind)
  }
})

t.test('a SHA-1 signature is not accepted as proof of possession', async (t) => {
  const err = t.throws(() => parseCsr(opensslCsr('rsa-2048-sha1'))) as CsrError
  t.equal(err.code, 'CSR_SIGNATURE_INVALID')
  t.match(err.message, /1\.2\.840\.113549\.1\.1\.5.*not supported/)
})

t.test('garbage and non-DER input is CSR_MALFORMED', async (t) => {
  const valid = await peculiarCsr('ec-p256')
  const pem = Buffer.from(`-----BEGIN CERTIFICATE REQUEST-----\n${valid.toString('base64')}\n-----END...`)
  const cases: Array<[string, unknown]> = [
    ['empty', Buffer.alloc(0)],
    ['one byte', Buffer.from([0x30])],
    ['text', Buffer.from('hello world')],
    ['PEM instead of DER', pem],
    ['random bytes', Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 151 + 7) & 0xff))],
    ['zeros', Buffer.alloc(64)],
    ['indefinite length', Buffer.from([0x30, 0x80, 0x00, 0x00])],
    [
      'non-minimal length',
      Buffer.concat([Buffer.from([0x30, 0x82, 0x00, valid.length - 3]), valid.subarray(3)]),
    ],
    ['huge length', Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00])],
    ['length of length too big', Buffer.from([0x30, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1])],
    ['empty SEQUENCE', Buffer.from([0x30, 0x00])],
    ['wrong outer tag', Buffer.concat([Buffer.from([0x31]), valid.subarray(1)])],
    ['a string, not bytes', 'MIIB'],
    ['undefined', undefined],
    ['too large', Buffer.alloc(100_000, 0x30)],
  ]
  for (const [what, input] of cases) t.equal(codeOf(input), 'CSR_MALFORMED', what)
})

t.test('truncated DER is CSR_MALFORMED at every length', async (t) => {
  for (const kind of ['ec-p256', 'rsa-2048'] as CsrKind[]) {
    const der = await peculiarCsr(kind)
    const codes = new Set<string>()
    for (let len = 0; len < der.length; len++) codes.add(codeOf(der.subarray(0, len)))
    t.same([...codes], ['CSR_MALFORMED'], `${kind}: all ${der.length} prefixes`)
  }
})

t.test('trailing bytes are CSR_MALFORMED', async (t) => {
  const der = await peculiarCsr('ec-p256')
  t.equal(codeOf(Buffer.concat([der, Buffer.from([0x00])])), 'CSR_MALFORMED')
  t.equal(codeOf(Buffer.concat([der, der])), 'CSR_MALFORMED', 'two CSRs back to back')
  const err = t.throws(() => parseCsr(Buffer.concat([der, Buffer.from([1, 2, 3])]))) as CsrError
  t.match(err.message, /3 trailing bytes/)
})

t.test('wrong structure is CSR_MALFORMED', async (t) => {
  const der = await peculiarCsr('ec-p256')
  const p = csrParts(der)
  const slice = (tlv: { start: number; end: number }) => der.subarray(tlv.start, tlv.end)
  const info = readTlv(der, p.info.start)
  const infoFields = readChildren(der, info).map((f) => der.subarray(f.start, f.end))
  const cases: Array<[string, Buffer]> = [
    ['missing signature', encodeSequence(slice(p.info), slice(p.sigAlg))],
    ['extra element', encodeSequence(slice(p.info), slice(p.sigAlg), slice(p.sig), encodeTlv(0x05))],
    [
      'signature not a BIT STRING',
      encodeSequence(slice(p.info), slice(p.sigAlg), encodeTlv(0x04, Buffer.from([0, 1]))),
    ],
    [
      'version 1',
      encodeSequence(
        encodeSequence(Buffer.from([2, 1, 1]), ...infoFields.slice(1)),
        slice(p.sigAlg),
        slice(p.sig),
      ),
    ],
    ['no SPKI', encodeSequence(encodeSequence(...infoFields.slice(0, 2)), slice(p.sigAlg), slice(p.sig))],
    [
      'attributes with a wrong tag',
      encodeSequence(
        encodeSequence(...infoFields.slice(0, 3), encodeTlv(0xa1)),
        slice(p.sigAlg),
        slice(p.sig),
      ),
    ],
  ]
  for (const [what, input] of cases) t.equal(codeOf(input), 'CSR_MALFORMED', what)
})

t.test('a signature that does not match the key is CSR_SIGNATURE_INVALID', async (t) => {
  for (const kind of ['ec-p256', 'ec-p384', 'rsa-2048'] as CsrKind[]) {
    const der = await peculiarCsr(kind)
    const flipped = Buffer.from(der)
    flipped[flipped.length - 1]! ^= 0x01
    t.equal(codeOf(flipped), 'CSR_SIGNATURE_INVALID', `${kind}: flipped last signature byte`)

    const p = csrParts(der)
    const mid = Buffer.from(der)
    mid[p.sig.contentStart + Math.floor((p.sig.contentEnd - p.sig.contentStart) / 2)]! ^= 0x40
    t.equal(codeOf(mid), 'CSR_SIGNATURE_INVALID', `${kind}: flipped a middle signature byte`)

    // Same-type keys have same-length SPKIs, so swapping keeps every length valid.
    const other = await peculiarCsr(kind)
    const o = csrParts(other)
    const swapped = Buffer.concat([
      der.subarray(0, p.spki.start),
      other.subarray(o.spki.start, o.spki.end),
      der.subarray(p.spki.end),
    ])
    t.equal(swapped.length, der.length)
    t.equal(codeOf(swapped), 'CSR_SIGNATURE_INVALID', `${kind}: another key's SPKI swapped in`)

    const subject = Buffer.from(der)
    subject[p.subject.end - 1]! ^= 0x01
    t.equal(codeOf(subject), 'CSR_SIGNATURE_INVALID', `${kind}: subject changed after signing`)
  }
  const openssl = opensslCsr('rsa-2048-pss')
  const bad = Buffer.from(openssl)
  bad[bad.length - 5]! ^= 0x10
  t.equal(codeOf(bad), 'CSR_SIGNATURE_INVALID', 'RSA-PSS with a flipped byte')
})

t.test('a signature algorithm of the wrong family is CSR_SIGNATURE_INVALID', async (t) => {
  const ec = await peculiarCsr('ec-p256')
  const rsa = await peculiarCsr('rsa-2048')
  const e = csrParts(ec)
  const r = csrParts(rsa)
  const ecInfoRsaAlg = encodeSequence(
    ec.subarray(e.info.start, e.info.end),
    rsa.subarray(r.sigAlg.start, r.sigAlg.end),
    ec.subarray(e.sig.start, e.sig.end),
  )
  t.equal(codeOf(ecInfoRsaAlg), 'CSR_SIGNATURE_INVALID')
})

t.test('mutated CSRs are always rejected, and only with CsrError', async (t) => {
  const rand = prng(0x5161)
  const inputs = [await peculiarCsr('ec-p256'), opensslCsr('ec-p384'), opensslCsr('rsa-2048')]
  const seen = new Map<string, number>()
  let cases = 0
  for (const der of inputs) {
    for (let i = 0; i < 700; i++) {
      const m = Buffer.from(der)
      const flips = 1 + Math.floor(rand() * 3)
      for (let f = 0; f < flips; f++) {
        const pos = Math.floor(rand() * m.length)
        const before = m[pos]!
        m[pos] = before ^ (1 + Math.floor(rand() * 255))
      }
      const code = codeOf(m)
      seen.set(code, (seen.get(code) ?? 0) + 1)
      cases++
    }
  }
  const codes = [...seen.keys()]
  t.notOk(seen.has('ACCEPTED'), 'no mutant accepted')
  t.same(
    codes.filter((c) => c.startsWith('NOT_A_CSR_ERROR')),
    [],
    'every rejection is a CsrError',
  )
  t.ok(
    seen.has('CSR_MALFORMED') && seen.has('CSR_SIGNATURE_INVALID'),
    `codes seen over ${cases} mutants: ${codes}`,
  )
})

t.test('a repeated key is served from the key cache with the same result', async (t) => {
  const der = await peculiarCsr('ec-p256')
  const a = parseCsr(der)
  const b = parseCsr(der)
  t.equal(a.publicKey, b.publicKey, 'same KeyObject reused')
  const flipped = Buffer.from(der)
  flipped[flipped.length - 1]! ^= 1
  t.equal(codeOf(flipped), 'CSR_SIGNATURE_INVALID', 'a cached key does not skip signature verification')
})
