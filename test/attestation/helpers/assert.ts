// Assertions for refused attestations: the error's code, what its message says, and what it must not.

import type { Test } from 'tap'
import { AttestationError } from '../../../services/attestation/errors.ts'

type T = Pick<Test, 'ok' | 'equal' | 'match' | 'notMatch' | 'fail'>

export async function refused(
  t: T,
  promise: Promise<unknown>,
  code: string,
  message?: RegExp,
  opts: { secret?: string; what?: string } = {},
): Promise<Error & { code?: string }> {
  try {
    await promise
  } catch (err) {
    const e = err as Error & { code?: string }
    t.equal(e.code, code, `${opts.what ?? 'refused'} with ${code} (${e.message})`)
    if (code.startsWith('ATTEST')) t.ok(e instanceof AttestationError, 'an AttestationError')
    if (message) t.match(e.message, message)
    if (opts.secret) {
      t.notMatch(e.message, opts.secret.slice(0, 24), 'the message does not carry the token')
      t.notMatch(JSON.stringify(e), opts.secret.slice(0, 24), 'nor does the serialized error')
    }
    return e
  }
  t.fail(`${opts.what ?? 'attestation'} was accepted; expected ${code}`)
  return new Error('accepted')
}
