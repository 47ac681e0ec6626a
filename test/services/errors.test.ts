import t from 'tap'
import { codes, quote, SigilError } from '../../services/errors.ts'

t.test('every error key equals its code, with a 4xx/5xx status', async (t) => {
  for (const [key, def] of Object.entries(codes)) {
    t.equal(def.code, key)
    t.ok(def.status >= 400 && def.status < 600, `${key} has an error status`)
  }
})

t.test('SigilError carries code, status and cause', async (t) => {
  const cause = new Error('inner')
  const err = new SigilError('TTL_TOO_LONG', 'too long', { cause })
  t.equal(err.code, 'TTL_TOO_LONG')
  t.equal(err.status, 400)
  t.equal(err.cause, cause)
})

t.test('quote() escapes control characters and clips', async (t) => {
  t.equal(quote('a\u0000b'), '"a\\u0000b"')
  t.equal(quote('<script>'), '"<script>"')
  t.equal(quote('x'.repeat(200)).length, 120 + 1 + 2, '120 characters, an ellipsis, two quotes')
})
