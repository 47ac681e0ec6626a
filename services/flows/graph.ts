// The flow graph of a trust domain: who talked to whom, on which port, with which verdicts. Pure: it
// takes flow records (both sides of a flow may be among them) and returns nodes and edges, or their
// Graphviz rendering.

import type { FlowRecord, FlowVerdict } from './flow.ts'

export type NodeKind = 'workload' | 'external' | 'unidentified'

export interface GraphNode {
  id: string
  kind: NodeKind
  label: string
  spiffeId?: string
  fqdn?: string
}

export interface GraphEdge {
  id: string
  source: string
  target: string
  port: number
  verdicts: Record<FlowVerdict, number>
  flows: number
  bytesOut: number
  bytesIn: number
  /** The rules that decided these flows, sorted. */
  rules: string[]
  /** ISO time of the newest flow's start. */
  lastSeen: string
}

export interface FlowGraph {
  nodes: GraphNode[]
  edges: GraphEdge[]
}

/**
 * One record per flow: the two sides' reports of one flow (same id) count once. The egress record is
 * kept (its source has the process); the ingress side contributes what only the callee's agent knows
 * (its agent, the destination's selectors) and a refusal: a flow either side denied was denied.
 */
export function joinFlows(records: readonly FlowRecord[]): FlowRecord[] {
  const byId = new Map<string, { egress?: FlowRecord; ingress?: FlowRecord; relay?: FlowRecord }>()
  for (const r of records) {
    const pair = byId.get(r.id) ?? {}
    pair[r.side] = r
    byId.set(r.id, pair)
  }
  const out: FlowRecord[] = []
  for (const { egress, ingress: ingressRecord, relay } of byId.values()) {
    // A broker's relay record stands in for the far side when the callee's report is missing, and
    // carries its refusal (the broker refused a tunnel before either agent saw it).
    const ingress = ingressRecord ?? relay
    if (!egress || !ingress) {
      out.push((egress ?? ingress)!)
      continue
    }
    const joined: FlowRecord = {
      ...egress,
      source: { ...egress.source },
      destination: { ...egress.destination },
    }
    if (ingress.destination.agent !== undefined) joined.destination.agent = ingress.destination.agent
    if (joined.destination.selectors === undefined && ingress.destination.selectors !== undefined) {
      joined.destination.selectors = [...ingress.destination.selectors]
    }
    if (joined.destination.spiffeId === undefined && ingress.destination.spiffeId !== undefined) {
      joined.destination.spiffeId = ingress.destination.spiffeId
    }
    if (ingress.verdict === 'denied' && egress.verdict !== 'denied') {
      joined.verdict = 'denied'
      joined.reason = ingress.reason
      if (ingress.rule !== undefined) joined.rule = ingress.rule
      else delete joined.rule
    }
    out.push(joined)
  }
  return out.sort((a, b) => b.start - a.start || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
}

const UNKNOWN_AGENT = 'an unknown agent'

function sourceNode(r: FlowRecord): GraphNode {
  const { spiffeId, path, agent } = r.source
  if (spiffeId) return { id: spiffeId, kind: 'workload', label: spiffeId, spiffeId }
  const where = agent ?? UNKNOWN_AGENT
  const what = path ?? 'an unknown process'
  return {
    id: `unidentified:${where}:${what}`,
    kind: 'unidentified',
    label: `unidentified: ${what} on ${where}`,
  }
}

function destinationNode(r: FlowRecord): GraphNode {
  const { spiffeId, fqdn, service, port, agent } = r.destination
  if (spiffeId) return { id: spiffeId, kind: 'workload', label: spiffeId, spiffeId }
  if (fqdn) return { id: `fqdn:${fqdn}`, kind: 'external', label: fqdn, fqdn }
  const where = agent ?? UNKNOWN_AGENT
  const what = service ?? `port ${port}`
  return {
    id: `unidentified:${where}:${what}`,
    kind: 'unidentified',
    label: `unidentified: ${what} on ${where}`,
  }
}

/** The graph of joined flows (see joinFlows); nodes and edges sorted by id. */
export function buildGraph(flows: readonly FlowRecord[]): FlowGraph {
  const nodes = new Map<string, GraphNode>()
  const edges = new Map<string, GraphEdge & { last: number; ruleSet: Set<string> }>()
  for (const f of flows) {
    const src = sourceNode(f)
    const dst = destinationNode(f)
    nodes.set(src.id, src)
    nodes.set(dst.id, dst)
    const port = f.destination.port
    const id = `${src.id} -> ${dst.id}:${port}`
    let edge = edges.get(id)
    if (!edge) {
      edge = {
        id,
        source: src.id,
        target: dst.id,
        port,
        verdicts: { allowed: 0, denied: 0, unidentified: 0 },
        flows: 0,
        bytesOut: 0,
        bytesIn: 0,
        rules: [],
        lastSeen: '',
        last: Number.NEGATIVE_INFINITY,
        ruleSet: new Set(),
      }
      edges.set(id, edge)
    }
    edge.verdicts[f.verdict]++
    edge.flows++
    edge.bytesOut += f.bytesOut
    edge.bytesIn += f.bytesIn
    if (f.rule !== undefined) edge.ruleSet.add(f.rule)
    edge.last = Math.max(edge.last, f.start)
  }
  const byId = <T extends { id: string }>(a: T, b: T) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  return {
    nodes: [...nodes.values()].sort(byId),
    edges: [...edges.values()]
      .map(({ last, ruleSet, ...edge }) => ({
        ...edge,
        rules: [...ruleSet].sort(),
        lastSeen: new Date(last).toISOString(),
      }))
      .sort(byId),
  }
}

/** A DOT double-quoted string: backslashes and quotes escaped, control characters made harmless. */
export function dotString(text: string): string {
  const escaped = text
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\r\n|\r|\n/g, '\\n')
    .replace(/[\u0000-\u001f\u007f]/g, ' ')
  return `"${escaped}"`
}

const VERDICT_COLORS: Record<FlowVerdict, string> = {
  allowed: 'green',
  denied: 'red',
  unidentified: 'orange',
}

const NODE_STYLES: Record<NodeKind, string> = {
  workload: 'shape=box, style=rounded',
  external: 'shape=ellipse',
  unidentified: 'shape=box, style=dashed, color=orange',
}

/** The colour of an edge: red when any of its flows was denied, else orange when any was unidentified. */
export function edgeVerdict(edge: Pick<GraphEdge, 'verdicts'>): FlowVerdict {
  if (edge.verdicts.denied > 0) return 'denied'
  if (edge.verdicts.unidentified > 0) return 'unidentified'
  return 'allowed'
}

/** Graphviz DOT. Node IDs are generated (n0, n1, ...); every name appears only as an escaped label. */
export function toDot(graph: FlowGraph): string {
  const ids = new Map(graph.nodes.map((n, i) => [n.id, `n${i}`]))
  const lines = [
    'digraph sigil_flows {',
    '  rankdir=LR;',
    '  node [fontname="Helvetica", fontsize=10];',
    '  edge [fontname="Helvetica", fontsize=9];',
  ]
  for (const n of graph.nodes) {
    lines.push(`  ${ids.get(n.id)} [label=${dotString(n.label)}, ${NODE_STYLES[n.kind]}];`)
  }
  for (const e of graph.edges) {
    const { allowed, denied, unidentified } = e.verdicts
    const counts = [
      allowed ? `${allowed} allowed` : '',
      denied ? `${denied} denied` : '',
      unidentified ? `${unidentified} unidentified` : '',
    ].filter(Boolean)
    const label = `${e.port}\n${counts.join(', ')}`
    const color = VERDICT_COLORS[edgeVerdict(e)]
    lines.push(
      `  ${ids.get(e.source)} -> ${ids.get(e.target)} [label=${dotString(label)}, color=${color}, fontcolor=${color}];`,
    )
  }
  lines.push('}')
  return `${lines.join('\n')}\n`
}
