// Recommends the smallest allow-only policy that admits every observed identified flow, for an operator
// about to switch from baseline to explicit.
//
// How:
//   1. Keep flows whose source has a valid SPIFFE ID and whose destination has a SPIFFE ID or an FQDN
//      (a destination known only by selectors cannot be named safely, so it is left out).
//   2. One rule per (source, destination), with the union of the observed ports (adjacent ports merge
//      into ranges).
//   3. Sources that have exactly the same destinations and ports, and share the same parent path
//      (all segments but the last, at least one segment), collapse into the glob `parent/*`. The glob
//      also admits unobserved siblings under that parent: a deliberate widening, as a deployment's
//      replicas and new siblings usually need the same access.
// The result never holds more rules than distinct (source, destination) pairs.

import { parseSpiffeId, SpiffeIdError } from '../authority/spiffe-id.ts'
import type { Flow } from './evaluate.ts'
import { formatPort, fqdnProblem, mergePorts, normalizeFqdn } from './patterns.ts'
import type { Destination, Policy, PortRange, Rule } from './policy.ts'

export { toCiliumNetworkPolicy, toKubernetesNetworkPolicy, toYaml } from './export.ts'

function validId(id: string | undefined): id is string {
  if (!id) return false
  try {
    parseSpiffeId(id, { requireWorkloadPath: true })
    return true
  } catch (err) {
    if (err instanceof SpiffeIdError) return false
    throw err
  }
}

function destinationKey(flow: Flow): string | undefined {
  const { spiffeId, fqdn } = flow.destination
  if (validId(spiffeId)) return `id ${spiffeId}`
  if (fqdn) {
    const name = normalizeFqdn(fqdn)
    if (!fqdnProblem(name) && !name.startsWith('*')) return `fqdn ${name}`
  }
  return undefined
}

function toDestination(key: string, ports: PortRange[]): Destination {
  const value = key.slice(key.indexOf(' ') + 1)
  return key.startsWith('id ') ? { spiffeId: value, ports } : { fqdn: value, ports }
}

function parentOf(id: string): string | undefined {
  const { trustDomain, path } = parseSpiffeId(id)
  const cut = path.lastIndexOf('/')
  if (cut <= 0) return undefined
  return `spiffe://${trustDomain}${path.slice(0, cut)}`
}

function slug(text: string): string {
  const s = text
    .replace(/^spiffe:\/\/[^/]+\//, '')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
  return s.slice(-40) || 'any'
}

export function recommend(flows: Flow[]): Policy {
  // source -> destination key -> ports
  const bySource = new Map<string, Map<string, PortRange[]>>()
  for (const flow of flows) {
    const src = flow.source.spiffeId
    const dst = destinationKey(flow)
    if (!validId(src) || !dst || !Number.isInteger(flow.port) || flow.port < 1 || flow.port > 65535) continue
    let dests = bySource.get(src)
    if (!dests) {
      dests = new Map()
      bySource.set(src, dests)
    }
    dests.set(dst, [...(dests.get(dst) ?? []), { from: flow.port, to: flow.port }])
  }

  // Group sources by parent path and identical access; a group of two or more becomes a glob.
  const groups = new Map<string, { sources: string[]; dests: Map<string, PortRange[]> }>()
  for (const [src, dests] of bySource) {
    for (const [k, ports] of dests) dests.set(k, mergePorts(ports))
    const signature = [...dests.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, ports]) => `${k}=${ports.map(formatPort).join(',')}`)
      .join(';')
    const parent = parentOf(src)
    const key = parent ? `${parent}\n${signature}` : `${src}\n${signature}`
    const group = groups.get(key)
    if (group) group.sources.push(src)
    else groups.set(key, { sources: [src], dests })
  }

  const rules: Rule[] = []
  const names = new Set<string>()
  const entries = [...groups.values()].sort((a, b) => (a.sources[0]! < b.sources[0]! ? -1 : 1))
  for (const { sources, dests } of entries) {
    const from = sources.length > 1 ? `${parentOf(sources[0]!)}/*` : sources[0]!
    for (const [k, ports] of [...dests.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const to = toDestination(k, ports)
      const base = `${slug(from === sources[0] ? from : `${parentOf(sources[0]!)}-all`)}-to-${slug(to.spiffeId ?? to.fqdn ?? '')}`
      let name = base.slice(0, 120)
      for (let i = 2; names.has(name); i++) name = `${base.slice(0, 120)}-${i}`
      names.add(name)
      rules.push({ name, action: 'allow', from: { spiffeId: from }, to })
    }
  }
  return { mode: 'explicit', allowWithin: [], rules }
}
