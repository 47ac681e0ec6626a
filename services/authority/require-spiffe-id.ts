import { quote, SigilError } from '../errors.ts'
import { parseSpiffeId, SpiffeIdError } from './spiffe-id.ts'

/**
 * Validates a SPIFFE ID from a request against the standard and the request's trust domain, turning a
 * violation into an API error that names the field. A tenant can never name another tenant's IDs.
 */
export function requireSpiffeId(
  id: unknown,
  trustDomain: string,
  field: string,
  opts: { workload?: boolean } = {},
): { trustDomain: string; path: string } {
  if (typeof id !== 'string') throw new SigilError('SPIFFE_ID_INVALID', `${field} must be a string`)
  let parsed: { trustDomain: string; path: string }
  try {
    parsed = parseSpiffeId(id)
  } catch (err) {
    if (err instanceof SpiffeIdError) {
      throw new SigilError(
        'SPIFFE_ID_INVALID',
        `${field} ${quote(id)} is not a valid SPIFFE ID: ${err.message}`,
        {
          cause: err,
        },
      )
    }
    throw err
  }
  if (parsed.trustDomain !== trustDomain) {
    throw new SigilError(
      'SPIFFE_ID_FOREIGN_TRUST_DOMAIN',
      `${field} ${quote(id)} belongs to trust domain ${quote(parsed.trustDomain)}, not ${quote(trustDomain)}; use an ID of the form spiffe://${trustDomain}/...`,
    )
  }
  if (opts.workload && parsed.path === '') {
    throw new SigilError(
      'SPIFFE_ID_INVALID',
      `${field} ${quote(id)} has no path; a workload ID looks like spiffe://${trustDomain}/service`,
    )
  }
  return parsed
}
