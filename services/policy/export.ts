// Renders a Policy as Sigil YAML (round-trips through parsePolicy) and as Kubernetes NetworkPolicy or
// CiliumNetworkPolicy manifests, for clusters that want the kernel's L3/L4 enforcement as well.
//
// Kubernetes NetworkPolicy (networking.k8s.io/v1) is L3/L4 and allow-only, keyed by pod labels, so
// these cannot be expressed and are listed as `# not exported:` comments at the top instead:
//   - deny rules (no deny in NetworkPolicy), FQDN destinations (no DNS names),
//   - selector criteria, above all the code-DNA unix:sha256 and unix:path (the kernel view of which
//     binary runs is invisible to the CNI), and every other unix: selector,
//   - SPIFFE ID globs, and identities for which namespaceOf/labelsOf return nothing,
//   - allowWithin, and baseline mode's "let the rest through": a NetworkPolicy that selects a pod
//     makes it default-deny for that direction, i.e. explicit mode for the pods it names.
// CiliumNetworkPolicy (cilium.io/v2) adds FQDN egress (toFQDNs, with the DNS visibility rule it needs)
// and deny rules (ingressDeny), but shares the other limits.
// Ports are TCP; a range uses endPort.

import { stringify } from 'yaml'
import { formatPort, isSpiffeGlob } from './patterns.ts'
import type { Destination, Policy, PortRange, Rule, Source } from './policy.ts'

export interface ClusterView {
  namespaceOf: (spiffeId: string) => string | undefined
  labelsOf: (spiffeId: string) => Record<string, string> | undefined
}

function endSpec(e: Source | Destination): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (e.spiffeId !== undefined) out['spiffeId'] = e.spiffeId
  if (e.selector !== undefined) out['selector'] = e.selector
  if ('fqdn' in e && e.fqdn !== undefined) out['fqdn'] = e.fqdn
  if ('ports' in e && e.ports) out['ports'] = e.ports.map(formatPort)
  return out
}

export function toYaml(policy: Policy): string {
  return stringify({
    mode: policy.mode,
    allowWithin: policy.allowWithin,
    rules: policy.rules.map((r) => ({
      name: r.name,
      action: r.action,
      from: endSpec(r.from),
      to: endSpec(r.to),
    })),
  })
}

interface Workload {
  namespace: string
  labels: Record<string, string>
}

function workload(id: string | undefined, view: ClusterView, what: string): Workload | string {
  if (id === undefined) return `${what} has no SPIFFE ID`
  if (isSpiffeGlob(id)) return `${what} ${id} is a glob; pod labels cannot express it`
  const namespace = view.namespaceOf(id)
  const labels = view.labelsOf(id)
  if (namespace === undefined || labels === undefined)
    return `${what} ${id} has no known namespace and labels`
  return { namespace, labels }
}

function k8sName(rule: Rule): string {
  const s = `sigil-${rule.name}`
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .slice(0, 63)
  return s.replace(/[^a-z0-9]+$/, '')
}

function k8sPorts(ports: PortRange[] | undefined): Array<Record<string, unknown>> | undefined {
  return ports?.map((r) =>
    r.from === r.to ? { protocol: 'TCP', port: r.from } : { protocol: 'TCP', port: r.from, endPort: r.to },
  )
}

function ciliumPorts(ports: PortRange[] | undefined): Array<Record<string, unknown>> | undefined {
  if (!ports) return undefined
  const list = ports.map((r) =>
    r.from === r.to
      ? { port: String(r.from), protocol: 'TCP' }
      : { port: String(r.from), endPort: r.to, protocol: 'TCP' },
  )
  return [{ ports: list }]
}

function render(header: string[], docs: unknown[]): string {
  const head = header.map((l) => `# ${l.replace(/\n/g, ' ')}\n`).join('')
  const body = docs.map((d) => stringify(d)).join('---\n')
  return head + (body || '{}\n')
}

function commonSkips(rule: Rule): string | undefined {
  if (rule.from.selector !== undefined || rule.to.selector !== undefined) {
    return 'selector criteria (including code-DNA) are not visible to the CNI'
  }
  return undefined
}

function policyNotes(policy: Policy): string[] {
  const notes: string[] = []
  if (policy.allowWithin.length > 0) notes.push(`not exported: allowWithin ${policy.allowWithin.join(', ')}`)
  if (policy.mode === 'baseline') {
    notes.push('note: policy is in baseline mode, but these manifests make the selected pods default-deny')
  }
  return notes
}

export function toKubernetesNetworkPolicy(policy: Policy, view: ClusterView): string {
  const notes = policyNotes(policy)
  const docs: unknown[] = []
  for (const rule of policy.rules) {
    const skip = (why: string) => notes.push(`not exported: rule ${rule.name}: ${why}`)
    if (rule.action === 'deny') {
      skip('NetworkPolicy cannot deny')
      continue
    }
    if (rule.to.fqdn !== undefined) {
      skip('NetworkPolicy cannot name an FQDN')
      continue
    }
    const common = commonSkips(rule)
    if (common) {
      skip(common)
      continue
    }
    const src = workload(rule.from.spiffeId, view, 'source')
    const dst = workload(rule.to.spiffeId, view, 'destination')
    if (typeof src === 'string' || typeof dst === 'string') {
      skip(typeof src === 'string' ? src : (dst as string))
      continue
    }
    const ingress: Record<string, unknown> = {
      from: [
        {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': src.namespace } },
          podSelector: { matchLabels: src.labels },
        },
      ],
    }
    const ports = k8sPorts(rule.to.ports)
    if (ports) ingress['ports'] = ports
    docs.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: {
        name: k8sName(rule),
        namespace: dst.namespace,
        labels: { 'sigil.dev/rule': k8sName(rule) },
      },
      spec: { podSelector: { matchLabels: dst.labels }, policyTypes: ['Ingress'], ingress: [ingress] },
    })
  }
  return render(notes, docs)
}

function ciliumEndpoint(w: Workload): Record<string, unknown> {
  return { matchLabels: { ...w.labels, 'k8s:io.kubernetes.pod.namespace': w.namespace } }
}

export function toCiliumNetworkPolicy(policy: Policy, view: ClusterView): string {
  const notes = policyNotes(policy)
  const docs: unknown[] = []
  for (const rule of policy.rules) {
    const skip = (why: string) => notes.push(`not exported: rule ${rule.name}: ${why}`)
    const common = commonSkips(rule)
    if (common) {
      skip(common)
      continue
    }
    const src = workload(rule.from.spiffeId, view, 'source')
    if (typeof src === 'string') {
      skip(src)
      continue
    }
    const metadata = (namespace: string) => ({ name: k8sName(rule), namespace })
    if (rule.to.fqdn !== undefined) {
      if (rule.action === 'deny') {
        skip('Cilium cannot deny by FQDN')
        continue
      }
      const fqdn = rule.to.fqdn.startsWith('*.')
        ? { matchPattern: rule.to.fqdn }
        : { matchName: rule.to.fqdn }
      const egress: Record<string, unknown> = { toFQDNs: [fqdn] }
      const ports = ciliumPorts(rule.to.ports)
      if (ports) egress['toPorts'] = ports
      // toFQDNs only learns addresses from DNS answers the proxy sees, hence the DNS rule.
      const dns = {
        toEndpoints: [
          { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } },
        ],
        toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }], rules: { dns: [{ matchPattern: '*' }] } }],
      }
      docs.push({
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumNetworkPolicy',
        metadata: metadata(src.namespace),
        spec: { endpointSelector: ciliumEndpoint(src), egress: [egress, dns] },
      })
      continue
    }
    const dst = workload(rule.to.spiffeId, view, 'destination')
    if (typeof dst === 'string') {
      skip(dst)
      continue
    }
    const ingress: Record<string, unknown> = { fromEndpoints: [ciliumEndpoint(src)] }
    const ports = ciliumPorts(rule.to.ports)
    if (ports) ingress['toPorts'] = ports
    docs.push({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: metadata(dst.namespace),
      spec: {
        endpointSelector: ciliumEndpoint(dst),
        [rule.action === 'deny' ? 'ingressDeny' : 'ingress']: [ingress],
      },
    })
  }
  return render(notes, docs)
}
