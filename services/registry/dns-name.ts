import { quote, SigilError } from '../errors.ts'

const label = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/

/** DNS SANs: lowercase RFC 1123 host names, optionally with one leading `*.` label. */
export function validateDnsName(name: string): void {
  const host = name.startsWith('*.') ? name.slice(2) : name
  const ok = name.length <= 253 && host.split('.').every((l) => label.test(l))
  if (!ok) {
    throw new SigilError(
      'DNS_NAME_INVALID',
      `DNS name ${quote(name)} is invalid: use lowercase letters, digits and hyphens in dot-separated labels (a leading *. is allowed)`,
    )
  }
}
