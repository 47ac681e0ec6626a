// The flow graph as the page works with it: nodes and edges by index, each node's namespace (from the
// registration entries' k8s:ns selectors, or a SPIFFE ID path of the Kubernetes form /ns/<ns>/...), and
// the filters (namespace, identity, verdict) as masks over the edges.

import type { Entry, FlowView, GraphEdge, GraphNode, Verdict } from '../api.ts'

export interface Model {
  nodes: GraphNode[]
  edges: GraphEdge[]
  index: Map<string, number>
  /** Per edge: source and target node indices. */
  ends: Uint32Array
  verdicts: Verdict[]
  namespaces: Array<string | undefined>
}

export function edgeVerdict(e: Pick<GraphEdge, 'verdicts'>): Verdict {
  if (e.verdicts.denied > 0) return 'denied'
  if (e.verdicts.unidentified > 0) return 'unidentified'
  return 'allowed'
}

export function namespaceOf(node: GraphNode, entryNamespaces: Map<string, string>): string | undefined {
  if (!node.spiffeId) return undefined
  return entryNamespaces.get(node.spiffeId) ?? /^spiffe:\/\/[^/]+\/ns\/([^/]+)\//.exec(node.spiffeId)?.[1]
}

export function entryNamespaces(entries: Entry[]): Map<string, string> {
  const out = new Map<string, string>()
  for (const e of entries) {
    const ns = e.selectors.find((s) => s.startsWith('k8s:ns:'))
    if (ns) out.set(e.spiffeId, ns.slice('k8s:ns:'.length))
  }
  return out
}

export function buildModel(graph: { nodes: GraphNode[]; edges: GraphEdge[] }, entries: Entry[]): Model {
  const index = new Map(graph.nodes.map((n, i) => [n.id, i]))
  const ends = new Uint32Array(graph.edges.length * 2)
  graph.edges.forEach((e, i) => {
    ends[i * 2] = index.get(e.source) ?? 0
    ends[i * 2 + 1] = index.get(e.target) ?? 0
  })
  const ns = entryNamespaces(entries)
  return {
    nodes: graph.nodes,
    edges: graph.edges,
    index,
    ends,
    verdicts: graph.edges.map(edgeVerdict),
    namespaces: graph.nodes.map((n) => namespaceOf(n, ns)),
  }
}

export interface Filters {
  namespace: string
  identity: string
  verdicts: Record<Verdict, boolean>
}

export function applyFilters(
  m: Model,
  f: Filters,
): { edges: Uint8Array; nodes: Uint8Array; edgeCount: number; nodeCount: number } {
  const edges = new Uint8Array(m.edges.length)
  const nodes = new Uint8Array(m.nodes.length)
  const q = f.identity.trim().toLowerCase()
  const nodeMatch = m.nodes.map((n, i) => {
    const nsOk = !f.namespace || m.namespaces[i] === f.namespace
    const idOk = !q || n.label.toLowerCase().includes(q)
    return nsOk && idOk
  })
  const filtering = Boolean(f.namespace || q)
  let edgeCount = 0
  for (let i = 0; i < m.edges.length; i++) {
    if (!f.verdicts[m.verdicts[i]!]) continue
    const s = m.ends[i * 2]!
    const t = m.ends[i * 2 + 1]!
    if (filtering && !nodeMatch[s] && !nodeMatch[t]) continue
    edges[i] = 1
    nodes[s] = 1
    nodes[t] = 1
    edgeCount++
  }
  if (!filtering && Object.values(f.verdicts).every(Boolean)) nodes.fill(1)
  let nodeCount = 0
  for (const v of nodes) nodeCount += v
  return { edges, nodes, edgeCount, nodeCount }
}

/** The graph's node IDs for a flow record's two ends, as the server builds them (flows/graph.ts). */
export function flowEnds(f: FlowView): { source: string; target: string } {
  const s = f.source
  const d = f.destination
  const source =
    s.spiffeId ?? `unidentified:${s.agent ?? 'an unknown agent'}:${s.path ?? 'an unknown process'}`
  const target = d.spiffeId
    ? d.spiffeId
    : d.fqdn
      ? `fqdn:${d.fqdn}`
      : `unidentified:${d.agent ?? 'an unknown agent'}:${d.service ?? `port ${d.port}`}`
  return { source, target }
}

/** The flows behind an edge: both sides' reports joined (the caller's side kept: it has the process). */
export function flowsOfEdge(edge: GraphEdge, flows: FlowView[]): FlowView[] {
  const byId = new Map<string, FlowView>()
  for (const f of flows) {
    if (f.destination.port !== edge.port) continue
    const ends = flowEnds(f)
    const sameTarget =
      ends.target === edge.target || (f.side !== 'egress' && f.destination.spiffeId === edge.target)
    const sameSource =
      ends.source === edge.source || (f.side !== 'egress' && f.source.spiffeId === edge.source)
    if (!sameTarget || !sameSource) continue
    const seen = byId.get(f.id)
    if (!seen || (seen.side !== 'egress' && f.side === 'egress')) byId.set(f.id, f)
    else if (seen.side === 'egress' && f.verdict === 'denied' && seen.verdict !== 'denied') {
      byId.set(f.id, { ...seen, verdict: 'denied', reason: f.reason, ...(f.rule ? { rule: f.rule } : {}) })
    }
  }
  return [...byId.values()].sort((a, b) => Date.parse(b.start) - Date.parse(a.start))
}
