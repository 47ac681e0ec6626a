import t from 'tap'
import {
  isSpiffeIdInTrustDomain,
  parseSpiffeId,
  SpiffeIdError,
  type SpiffeIdErrorCode,
  validateTrustDomainName,
} from '../../services/authority/spiffe-id.ts'

function codeOf(fn: () => unknown): SpiffeIdErrorCode | 'NO_THROW' | 'OTHER_ERROR' {
  try {
    fn()
    return 'NO_THROW'
  } catch (err) {
    return err instanceof SpiffeIdError ? err.code : 'OTHER_ERROR'
  }
}

t.test('valid SPIFFE IDs parse into trust domain and path', async (t) => {
  t.same(parseSpiffeId('spiffe://example.org/ns/prod/sa/api'), {
    trustDomain: 'example.org',
    path: '/ns/prod/sa/api',
  })
  t.same(parseSpiffeId('spiffe://example.org'), { trustDomain: 'example.org', path: '' })
  t.same(parseSpiffeId('spiffe://td_1-x.local/A-Z_a.z-0.9'), {
    trustDomain: 'td_1-x.local',
    path: '/A-Z_a.z-0.9',
  })
  t.same(parseSpiffeId('spiffe://1.2.3.4/x'), { trustDomain: '1.2.3.4', path: '/x' })
  t.same(
    parseSpiffeId('spiffe://example.org/...'),
    { trustDomain: 'example.org', path: '/...' },
    '"..." is a name',
  )
  t.same(parseSpiffeId('spiffe://example.org/.hidden/a..b'), {
    trustDomain: 'example.org',
    path: '/.hidden/a..b',
  })
  t.same(parseSpiffeId('spiffe://example.org/UPPER'), { trustDomain: 'example.org', path: '/UPPER' })
  const td255 = 'a'.repeat(255)
  t.equal(parseSpiffeId(`spiffe://${td255}/x`).trustDomain, td255, '255-byte trust domain is allowed')
  const base = 'spiffe://example.org/'
  const max = base + 'a'.repeat(2048 - base.length)
  t.equal(Buffer.byteLength(max), 2048)
  t.equal(parseSpiffeId(max).path.length, 2048 - 'spiffe://example.org'.length, '2048-byte ID is allowed')
})

t.test('requireWorkloadPath rejects the bare trust domain ID only', async (t) => {
  t.equal(
    codeOf(() => parseSpiffeId('spiffe://example.org', { requireWorkloadPath: true })),
    'SPIFFE_ID_MISSING_PATH',
  )
  t.equal(
    codeOf(() => parseSpiffeId('spiffe://example.org/w', { requireWorkloadPath: true })),
    'NO_THROW',
  )
})

const malformed: Array<[string, string, SpiffeIdErrorCode]> = [
  ['empty', '', 'SPIFFE_ID_EMPTY'],
  ['uppercase scheme', 'SPIFFE://example.org/a', 'SPIFFE_ID_INVALID_SCHEME'],
  ['mixed-case scheme', 'Spiffe://example.org/a', 'SPIFFE_ID_INVALID_SCHEME'],
  ['single slash', 'spiffe:/example.org/a', 'SPIFFE_ID_INVALID_SCHEME'],
  ['no slashes', 'spiffe:example.org/a', 'SPIFFE_ID_INVALID_SCHEME'],
  ['http scheme', 'http://example.org/a', 'SPIFFE_ID_INVALID_SCHEME'],
  ['https scheme', 'https://example.org/a', 'SPIFFE_ID_INVALID_SCHEME'],
  ['no scheme', 'example.org/a', 'SPIFFE_ID_INVALID_SCHEME'],
  ['leading space', ' spiffe://example.org/a', 'SPIFFE_ID_INVALID_SCHEME'],
  ['empty trust domain', 'spiffe:///a', 'TRUST_DOMAIN_INVALID'],
  ['scheme only', 'spiffe://', 'TRUST_DOMAIN_INVALID'],
  ['uppercase trust domain', 'spiffe://Example.org/a', 'TRUST_DOMAIN_INVALID'],
  ['port', 'spiffe://example.org:8443/a', 'TRUST_DOMAIN_INVALID'],
  ['userinfo', 'spiffe://user@example.org/a', 'TRUST_DOMAIN_INVALID'],
  ['userinfo with password', 'spiffe://user:pw@example.org/a', 'TRUST_DOMAIN_INVALID'],
  ['space in trust domain', 'spiffe://exa mple.org/a', 'TRUST_DOMAIN_INVALID'],
  ['IPv6 literal', 'spiffe://[::1]/a', 'TRUST_DOMAIN_INVALID'],
  ['non-ASCII trust domain', 'spiffe://exämple.org/a', 'TRUST_DOMAIN_INVALID'],
  ['empty segment', 'spiffe://example.org//a', 'SPIFFE_ID_EMPTY_SEGMENT'],
  ['empty segment in the middle', 'spiffe://example.org/a//b', 'SPIFFE_ID_EMPTY_SEGMENT'],
  ['dot segment', 'spiffe://example.org/a/./b', 'SPIFFE_ID_DOT_SEGMENT'],
  ['dot-dot segment', 'spiffe://example.org/a/../b', 'SPIFFE_ID_DOT_SEGMENT'],
  ['leading dot segment', 'spiffe://example.org/./a', 'SPIFFE_ID_DOT_SEGMENT'],
  ['trailing dot segment', 'spiffe://example.org/a/..', 'SPIFFE_ID_DOT_SEGMENT'],
  ['trailing slash', 'spiffe://example.org/a/', 'SPIFFE_ID_TRAILING_SLASH'],
  ['root path', 'spiffe://example.org/', 'SPIFFE_ID_TRAILING_SLASH'],
  ['percent-encoding in path', 'spiffe://example.org/a%2Fb', 'SPIFFE_ID_PERCENT_ENCODING'],
  ['percent-encoding in trust domain', 'spiffe://exa%6dple.org/a', 'SPIFFE_ID_PERCENT_ENCODING'],
  ['query', 'spiffe://example.org/a?x=1', 'SPIFFE_ID_QUERY_OR_FRAGMENT'],
  ['fragment', 'spiffe://example.org/a#frag', 'SPIFFE_ID_QUERY_OR_FRAGMENT'],
  ['query on trust domain', 'spiffe://example.org?x', 'SPIFFE_ID_QUERY_OR_FRAGMENT'],
  ['NUL', 'spiffe://example.org/a\u0000b', 'SPIFFE_ID_BAD_CHAR'],
  ['space', 'spiffe://example.org/a b', 'SPIFFE_ID_BAD_CHAR'],
  ['tab', 'spiffe://example.org/a\tb', 'SPIFFE_ID_BAD_CHAR'],
  ['newline', 'spiffe://example.org/a\nb', 'SPIFFE_ID_BAD_CHAR'],
  ['script tag', 'spiffe://example.org/<script>alert(1)</script>', 'SPIFFE_ID_BAD_CHAR'],
  ['double quote', 'spiffe://example.org/a"b', 'SPIFFE_ID_BAD_CHAR'],
  ['single quote', "spiffe://example.org/a'b", 'SPIFFE_ID_BAD_CHAR'],
  ['backslash', 'spiffe://example.org/a\\b', 'SPIFFE_ID_BAD_CHAR'],
  ['colon', 'spiffe://example.org/a:b', 'SPIFFE_ID_BAD_CHAR'],
  ['at sign in path', 'spiffe://example.org/a@b', 'SPIFFE_ID_BAD_CHAR'],
  ['non-ASCII in path', 'spiffe://example.org/caf\u00e9', 'SPIFFE_ID_BAD_CHAR'],
  ['emoji in path', 'spiffe://example.org/\u{1f600}', 'SPIFFE_ID_BAD_CHAR'],
  ['right-to-left override', 'spiffe://example.org/a\u202eb', 'SPIFFE_ID_BAD_CHAR'],
  ['too long', `spiffe://example.org/${'a'.repeat(2048)}`, 'SPIFFE_ID_TOO_LONG'],
  [
    'too long by one byte',
    `spiffe://example.org/${'a'.repeat(2048 - 'spiffe://example.org/'.length + 1)}`,
    'SPIFFE_ID_TOO_LONG',
  ],
  ['too long in bytes, not chars', `spiffe://example.org/${'\u00e9'.repeat(1100)}`, 'SPIFFE_ID_TOO_LONG'],
  ['trust domain over 255 bytes', `spiffe://${'a'.repeat(256)}/x`, 'TRUST_DOMAIN_INVALID'],
]

t.test('malformed SPIFFE IDs are rejected with the right code', async (t) => {
  for (const [what, id, code] of malformed) {
    t.equal(
      codeOf(() => parseSpiffeId(id)),
      code,
      what,
    )
  }
})

t.test('error messages quote the input safely and say how to fix it', async (t) => {
  const err = (id: string) => {
    try {
      parseSpiffeId(id)
    } catch (e) {
      return e as SpiffeIdError
    }
    throw new Error('expected a throw')
  }
  const nul = err('spiffe://example.org/a\u0000b')
  t.ok(nul instanceof Error && nul.name === 'SpiffeIdError')
  t.notMatch(nul.message, /\u0000/, 'no raw NUL in the message')
  t.match(nul.message, /\\u0000/, 'NUL is escaped')
  t.match(nul.message, /"spiffe:\/\/example.org\/a\\u0000b"/, 'input is JSON-quoted')
  t.match(nul.message, /letters, digits/, 'says what is allowed')

  const rtl = err('spiffe://example.org/a\u202eb')
  t.notMatch(rtl.message, /\u202e/, 'no raw bidi override in the message')
  t.match(rtl.message, /\\u202e/)

  const html = err('spiffe://example.org/<script>')
  t.match(html.message, /"spiffe:\/\/example.org\/<script>"/)

  const long = err(`spiffe://example.org/${'a'.repeat(5000)}`)
  t.ok(long.message.length < 400, 'long input is clipped in the message')
  t.match(long.message, /2048 bytes/)

  t.match(err('SPIFFE://example.org/a').message, /lowercase "spiffe:\/\/"/)
  t.match(err('spiffe://Example.org/a').message, /use "example.org"/)
  t.match(err('spiffe://example.org:1/a').message, /port/)
  t.match(err('spiffe://u@example.org/a').message, /user info/)
  t.match(err('spiffe://example.org/a/').message, /remove the trailing slash/)
})

t.test('validateTrustDomainName', async (t) => {
  for (const ok of ['example.org', 'a', 'td_1', 'my-domain.local', '0.0', 'x'.repeat(255)]) {
    t.equal(
      codeOf(() => validateTrustDomainName(ok)),
      'NO_THROW',
      ok.slice(0, 20),
    )
  }
  for (const bad of [
    '',
    'Example.org',
    'example.org:443',
    'u@example.org',
    'a/b',
    'a b',
    'x'.repeat(256),
    'é',
    '\u0000',
  ]) {
    t.equal(
      codeOf(() => validateTrustDomainName(bad)),
      'TRUST_DOMAIN_INVALID',
      JSON.stringify(bad.slice(0, 20)),
    )
  }
  t.equal(
    codeOf(() => validateTrustDomainName(undefined as unknown as string)),
    'TRUST_DOMAIN_INVALID',
  )
})

t.test('isSpiffeIdInTrustDomain', async (t) => {
  t.equal(isSpiffeIdInTrustDomain('spiffe://example.org/a', 'example.org'), true)
  t.equal(isSpiffeIdInTrustDomain('spiffe://example.org', 'example.org'), true)
  t.equal(isSpiffeIdInTrustDomain('spiffe://example.org.evil.com/a', 'example.org'), false)
  t.equal(isSpiffeIdInTrustDomain('spiffe://evil.com/example.org', 'example.org'), false)
  t.equal(
    isSpiffeIdInTrustDomain('spiffe://Example.org/a', 'example.org'),
    false,
    'invalid ID is never in a domain',
  )
  t.equal(isSpiffeIdInTrustDomain('spiffe://example.org/a/', 'example.org'), false)
  t.equal(isSpiffeIdInTrustDomain('spiffe://other.org/a', 'example.org'), false)
})

t.test('non-string input is rejected with a SpiffeIdError', async (t) => {
  t.equal(
    codeOf(() => parseSpiffeId(undefined as unknown as string)),
    'SPIFFE_ID_EMPTY',
  )
  t.equal(
    codeOf(() => parseSpiffeId(42 as unknown as string)),
    'SPIFFE_ID_EMPTY',
  )
})
