// Workload API messages from the identity source's material. Maps are built in sorted key order so the
// same material always encodes to the same bytes (streams send an update only when the bytes change).

import type { X509SvidMaterial } from './identity-source.ts'
import type { JwtBundlesResponse, X509BundlesResponse, X509SvidResponse } from './proto.ts'

export function trustDomainOf(spiffeId: string): string {
  const rest = spiffeId.startsWith('spiffe://') ? spiffeId.slice('spiffe://'.length) : spiffeId
  const slash = rest.indexOf('/')
  return slash < 0 ? rest : rest.slice(0, slash)
}

/** Bundle maps are keyed by the trust domain's SPIFFE ID. */
function key(trustDomain: string): string {
  return `spiffe://${trustDomain}`
}

/** The trust domains a workload with these SVIDs should trust: their own and those they federate with. */
export function trustedDomains(svids: X509SvidMaterial[]): { own: Set<string>; federated: Set<string> } {
  const own = new Set(svids.map((s) => trustDomainOf(s.spiffeId)))
  const federated = new Set<string>()
  for (const s of svids) for (const td of s.federatesWith) if (!own.has(td)) federated.add(td)
  return { own, federated }
}

export function x509SvidResponse(
  svids: X509SvidMaterial[],
  bundles: Map<string, Buffer[]>,
): X509SvidResponse {
  const { federated } = trustedDomains(svids)
  const federatedBundles: Record<string, Buffer> = {}
  for (const td of [...federated].sort()) {
    const roots = bundles.get(td)
    if (roots?.length) federatedBundles[key(td)] = Buffer.concat(roots)
  }
  return {
    svids: svids.map((s) => ({
      spiffe_id: s.spiffeId,
      x509_svid: Buffer.concat(s.certChainDer),
      x509_svid_key: s.privateKeyDer,
      bundle: Buffer.concat(s.bundleDer),
      hint: s.hint ?? '',
    })),
    crl: [],
    federated_bundles: federatedBundles,
  }
}

/** The X.509 bundles of `svids`' trust domains, or every bundle when `svids` is undefined. */
export function x509BundlesResponse(
  svids: X509SvidMaterial[] | undefined,
  bundles: Map<string, Buffer[]>,
): X509BundlesResponse {
  const roots = new Map<string, Buffer[]>()
  if (svids === undefined) {
    for (const [td, ders] of bundles) roots.set(td, ders)
  } else {
    const { own, federated } = trustedDomains(svids)
    for (const s of svids) {
      const td = trustDomainOf(s.spiffeId)
      if (!roots.has(td)) roots.set(td, bundles.get(td) ?? s.bundleDer)
    }
    for (const td of federated) {
      const ders = bundles.get(td)
      if (ders && !own.has(td)) roots.set(td, ders)
    }
  }
  const out: Record<string, Buffer> = {}
  for (const td of [...roots.keys()].sort()) {
    const ders = roots.get(td)!
    if (ders.length) out[key(td)] = Buffer.concat(ders)
  }
  return { crl: [], bundles: out }
}

/** The JWT bundles (JWK Set JSON) of `svids`' trust domains, or every bundle when `svids` is undefined. */
export function jwtBundlesResponse(
  svids: X509SvidMaterial[] | undefined,
  bundles: Map<string, { keys: Record<string, unknown>[] }>,
): JwtBundlesResponse {
  let domains: string[]
  if (svids === undefined) domains = [...bundles.keys()]
  else {
    const { own, federated } = trustedDomains(svids)
    domains = [...own, ...federated]
  }
  const out: Record<string, Buffer> = {}
  for (const td of [...new Set(domains)].sort()) {
    const jwks = bundles.get(td)
    if (jwks) out[key(td)] = Buffer.from(JSON.stringify({ keys: jwks.keys }))
  }
  return { bundles: out }
}
