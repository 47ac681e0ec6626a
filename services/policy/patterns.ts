// The three pattern languages of a policy: SPIFFE ID globs, FQDN patterns and port lists.
//
// SPIFFE ID globs. The trust domain is always literal. A path segment is either literal or exactly `*`:
//   - `*` as the LAST segment matches one or more remaining segments, so `spiffe://td/ns/prod/*` covers
//     everything under /ns/prod (e.g. /ns/prod/sa/api), but not /ns/prod itself;
//   - `*` anywhere else matches exactly one segment: `spiffe://td/*/db` matches /a/db, not /a/b/db.
// Partial-segment wildcards (`web-*`), `**`, `?` and character classes are refused, so a glob can
// always be read at a glance.
//
// FQDN patterns. Lowercase DNS names without a trailing dot. `*.` may only be the leftmost label and
// stands for exactly one label: `*.s3.amazonaws.com` matches a.s3.amazonaws.com, but neither
// s3.amazonaws.com nor x.a.s3.amazonaws.com. A wildcard needs at least two labels after it (`*.com`
// is refused), so one rule cannot open a whole top-level domain.

import type { PortRange } from './policy.ts'

export function isSpiffeGlob(pattern: string): boolean {
  return pattern.includes('*')
}

/** Why `pattern` is not a valid glob (segments only), or undefined. Trust domain and chars are checked by parseSpiffeId. */
export function globProblem(pattern: string): string | undefined {
  const rest = pattern.slice('spiffe://'.length)
  const slash = rest.indexOf('/')
  if (rest.slice(0, slash < 0 ? rest.length : slash).includes('*')) {
    return 'the trust domain of a SPIFFE ID cannot contain "*"'
  }
  for (const seg of slash < 0 ? [] : rest.slice(slash + 1).split('/')) {
    if (seg.includes('*') && seg !== '*') {
      return `"*" must be a whole path segment (got ${JSON.stringify(seg)}); write e.g. spiffe://td/ns/prod/*`
    }
  }
  return undefined
}

/** The glob with each `*` replaced by a literal segment, so parseSpiffeId can check the rest. */
export function globSkeleton(pattern: string): string {
  return pattern.replace(/\/\*(?=\/|$)/g, '/x')
}

function segments(id: string): { td: string; segs: string[] } | undefined {
  if (!id.startsWith('spiffe://')) return undefined
  const rest = id.slice('spiffe://'.length)
  const slash = rest.indexOf('/')
  if (slash < 0) return { td: rest, segs: [] }
  return { td: rest.slice(0, slash), segs: rest.slice(slash + 1).split('/') }
}

export function matchSpiffeId(pattern: string, id: string): boolean {
  if (!isSpiffeGlob(pattern)) return pattern === id
  const p = segments(pattern)
  const s = segments(id)
  if (!p || !s || p.td !== s.td) return false
  const last = p.segs.length - 1
  for (let i = 0; i < p.segs.length; i++) {
    const ps = p.segs[i]
    if (i === last && ps === '*') return s.segs.length > i
    if (i >= s.segs.length) return false
    if (ps !== '*' && ps !== s.segs[i]) return false
  }
  return s.segs.length === p.segs.length
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

export function fqdnProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return 'FQDN is empty'
  if (pattern.length > 253) return `FQDN is ${pattern.length} characters; the limit is 253`
  if (pattern !== pattern.toLowerCase())
    return `FQDN must be lowercase; write ${JSON.stringify(pattern.toLowerCase())}`
  if (pattern.endsWith('.')) return 'FQDN must not end with "."'
  const labels = pattern.split('.')
  const wild = labels[0] === '*'
  for (const [i, label] of labels.entries()) {
    if (i === 0 && wild) continue
    if (label.includes('*')) return '"*" may only be the whole leftmost label, as in *.s3.amazonaws.com'
    if (!LABEL.test(label)) {
      return `label ${JSON.stringify(label)} is not a DNS label (a-z, 0-9 and "-", 1-63 characters, no leading or trailing "-")`
    }
  }
  if (wild && labels.length < 3)
    return `wildcard ${JSON.stringify(pattern)} is too broad; name at least two labels after "*."`
  return undefined
}

/** Normalizes a name seen on the wire: lowercase, no trailing dot. */
export function normalizeFqdn(name: string): string {
  const lower = name.toLowerCase()
  return lower.endsWith('.') ? lower.slice(0, -1) : lower
}

export function matchFqdn(pattern: string, name: string): boolean {
  const n = normalizeFqdn(name)
  if (!pattern.startsWith('*.')) return pattern === n
  const suffix = pattern.slice(1)
  if (!n.endsWith(suffix)) return false
  const head = n.slice(0, n.length - suffix.length)
  return head.length > 0 && !head.includes('.')
}

export function matchPorts(ports: PortRange[] | undefined, port: number): boolean {
  if (!ports) return true
  return ports.some((r) => port >= r.from && port <= r.to)
}

export function formatPort(r: PortRange): number | string {
  return r.from === r.to ? r.from : `${r.from}-${r.to}`
}

/** Sorted, with overlapping and adjacent ranges merged. */
export function mergePorts(ports: PortRange[]): PortRange[] {
  const sorted = [...ports].sort((a, b) => a.from - b.from)
  const out: PortRange[] = []
  for (const r of sorted) {
    const prev = out[out.length - 1]
    if (prev && r.from <= prev.to + 1) prev.to = Math.max(prev.to, r.to)
    else out.push({ ...r })
  }
  return out
}
