// The network graph: workloads, outside names and unidentified processes as nodes, flows as edges
// coloured by verdict. Filters by namespace, identity, verdict and time window; a click on an edge
// shows its flows, the rule that decided them and the processes (path and code-DNA) behind them.
// Drawn on a canvas, laid out in a Web Worker; the same edges are listed in a table for keyboard and
// screen-reader users.

import { useCallback, useEffect, useMemo, useRef, useState } from 'react'
import {
  type Entry,
  type FlowView,
  type GraphEdge,
  type GraphNode,
  get,
  tdPath,
  type Verdict,
} from '../api.ts'
import { ErrorAlert, Loading } from '../components/Alert.tsx'
import { formatBytes, formatTime, relative } from '../format.ts'
import { useApi } from '../hooks.ts'
import { initialPositions } from './layout.ts'
import { applyFilters, buildModel, type Filters, flowsOfEdge, type Model } from './model.ts'
import { GraphRenderer, KIND_COLOR, VERDICT_COLOR } from './renderer.ts'

const WINDOWS = [
  { seconds: 900, label: '15 minutes' },
  { seconds: 3600, label: '1 hour' },
  { seconds: 6 * 3600, label: '6 hours' },
  { seconds: 86400, label: '24 hours' },
  { seconds: 7 * 86400, label: '7 days' },
]
const TABLE_ROWS = 50

export default function GraphPage({ td }: { td: string }) {
  const [since, setSince] = useState(3600)
  const started = useRef(performance.now())
  useEffect(() => {
    performance.mark('sigil:graph-start')
  }, [])
  const graph = useApi<{ nodes: GraphNode[]; edges: GraphEdge[] }>(tdPath(td, `/flows/graph?since=${since}`))
  const entries = useApi<{ entries: Entry[] }>(tdPath(td, '/entries'))
  const model = useMemo(
    () =>
      graph.data && (entries.data || entries.error)
        ? buildModel(graph.data, entries.data?.entries ?? [])
        : undefined,
    [graph.data, entries.data, entries.error],
  )
  const [filters, setFilters] = useState<Filters>({
    namespace: '',
    identity: '',
    verdicts: { allowed: true, denied: true, unidentified: true },
  })
  const [selected, setSelected] = useState<{ edge: number } | { node: number }>()
  const namespaces = useMemo(
    () => [...new Set((model?.namespaces ?? []).filter((n): n is string => Boolean(n)))].sort(),
    [model],
  )
  const visible = useMemo(() => (model ? applyFilters(model, filters) : undefined), [model, filters])

  return (
    <section aria-labelledby="graph-heading" className="graph-page">
      <h1 id="graph-heading">Network graph of {td}</h1>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Graph filters">
        <label>
          <span>Time window</span>
          <select value={since} onChange={(e) => setSince(Number(e.target.value))}>
            {WINDOWS.map((w) => (
              <option key={w.seconds} value={w.seconds}>
                last {w.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span>Namespace</span>
          <select
            value={filters.namespace}
            onChange={(e) => setFilters({ ...filters, namespace: e.target.value })}
          >
            <option value="">All namespaces</option>
            {namespaces.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span>Identity</span>
          <input
            type="search"
            value={filters.identity}
            placeholder="SPIFFE ID, name or path"
            onChange={(e) => setFilters({ ...filters, identity: e.target.value })}
          />
        </label>
        <fieldset className="verdicts">
          <legend>Verdicts</legend>
          {(['allowed', 'unidentified', 'denied'] as const).map((v) => (
            <label key={v} className="check">
              <input
                type="checkbox"
                checked={filters.verdicts[v]}
                onChange={(e) =>
                  setFilters({ ...filters, verdicts: { ...filters.verdicts, [v]: e.target.checked } })
                }
              />
              <span className="swatch" style={{ background: VERDICT_COLOR[v] }} aria-hidden="true" />
              {v[0]!.toUpperCase() + v.slice(1)}
            </label>
          ))}
        </fieldset>
      </form>
      <ErrorAlert error={graph.error} />
      {!model && !graph.error && <Loading what="the flow graph" />}
      {model && visible && (
        <>
          <p className="muted" role="status">
            {visible.nodeCount} of {model.nodes.length} nodes, {visible.edgeCount} of {model.edges.length}{' '}
            edges in the last {WINDOWS.find((w) => w.seconds === since)?.label}.
          </p>
          <div className="graph-area">
            <GraphCanvas
              model={model}
              visibleEdges={visible.edges}
              visibleNodes={visible.nodes}
              selected={selected}
              onSelect={setSelected}
              startedAt={started.current}
            />
            <Details
              td={td}
              model={model}
              since={since}
              selected={selected}
              onClose={() => setSelected(undefined)}
              onFilter={(identity) => setFilters({ ...filters, identity })}
            />
          </div>
          <Legend />
          <EdgeTable model={model} visible={visible.edges} onShow={(edge) => setSelected({ edge })} />
        </>
      )}
    </section>
  )
}

function GraphCanvas({
  model,
  visibleEdges,
  visibleNodes,
  selected,
  onSelect,
  startedAt,
}: {
  model: Model
  visibleEdges: Uint8Array
  visibleNodes: Uint8Array
  selected: { edge: number } | { node: number } | undefined
  onSelect(s: { edge: number } | { node: number } | undefined): void
  startedAt: number
}) {
  const canvas = useRef<HTMLCanvasElement>(null)
  const box = useRef<HTMLDivElement>(null)
  const renderer = useRef<GraphRenderer>(undefined)
  const [layoutState, setLayoutState] = useState('laying out')
  // The visibility a new renderer starts with (later changes reach it through the effect below).
  const initialVisibility = useRef({ edges: visibleEdges, nodes: visibleNodes })
  initialVisibility.current = { edges: visibleEdges, nodes: visibleNodes }

  // One renderer per model; the worker refines the layout and the first frame is drawn at once.
  useEffect(() => {
    const el = canvas.current!
    const r = new GraphRenderer(el)
    renderer.current = r
    r.nodes = model.nodes.map((n) => ({ label: n.label, kind: n.kind }))
    r.edges = model.edges.map((_, i) => ({
      source: model.ends[i * 2]!,
      target: model.ends[i * 2 + 1]!,
      verdict: model.verdicts[i]!,
    }))
    r.positions = initialPositions({ nodeCount: model.nodes.length, edges: model.ends })
    r.visibleEdges = initialVisibility.current.edges
    r.visibleNodes = initialVisibility.current.nodes
    const rect = box.current!.getBoundingClientRect()
    r.resize(Math.max(300, rect.width), Math.max(300, rect.height))
    r.fit()
    let first = true
    r.onDraw = (ms, layer) => {
      el.dataset.drawMs = ms.toFixed(1)
      el.dataset.layer = layer ? 'drawn' : 'reused'
      if (first) {
        first = false
        // The next frame starts once this one is painted.
        requestAnimationFrame(() => {
          performance.mark('sigil:graph-rendered')
          el.dataset.renderMs = (performance.now() - startedAt).toFixed(0)
          el.dataset.rendered = 'true'
        })
      }
    }
    r.draw()
    ;(el as HTMLCanvasElement & { sigilGraph?: unknown }).sigilGraph = {
      edgePoint: (id: string) => {
        const i = model.edges.findIndex((e) => e.id === id)
        const p = r.edgeMidpoint(i)
        const b = el.getBoundingClientRect()
        return p && { x: p.x + b.left, y: p.y + b.top }
      },
    }
    const worker = new Worker(new URL('./layout.worker.ts', import.meta.url), { type: 'module' })
    let fitted = false
    worker.onmessage = (ev: MessageEvent<{ positions: Float32Array; done: boolean }>) => {
      r.positions = ev.data.positions
      if (!fitted && ev.data.done) {
        fitted = true
        r.fit()
      }
      r.invalidate()
      if (ev.data.done) setLayoutState('laid out')
    }
    worker.postMessage({
      nodeCount: model.nodes.length,
      edges: model.ends,
      positions: r.positions.slice(),
      iterations: model.nodes.length > 200 ? 200 : 300,
    })
    const observer = new ResizeObserver(([entry]) => {
      if (entry) r.resize(Math.max(300, entry.contentRect.width), Math.max(300, entry.contentRect.height))
    })
    observer.observe(box.current!)
    return () => {
      worker.terminate()
      observer.disconnect()
    }
  }, [model, startedAt])

  useEffect(() => {
    const r = renderer.current
    if (!r || (r.visibleEdges === visibleEdges && r.visibleNodes === visibleNodes)) return
    r.visibleEdges = visibleEdges
    r.visibleNodes = visibleNodes
    r.invalidate()
  }, [visibleEdges, visibleNodes])

  useEffect(() => {
    const r = renderer.current
    if (!r) return
    r.selectedEdge = selected && 'edge' in selected ? selected.edge : -1
    r.requestDraw()
  }, [selected])

  // Pan by dragging, zoom with the wheel; a click without a drag selects.
  const drag = useRef<{ x: number; y: number; moved: boolean } | undefined>(undefined)
  const local = (e: { clientX: number; clientY: number }) => pointIn(canvas.current!, e)
  useEffect(() => {
    const el = canvas.current!
    const onWheel = (e: WheelEvent) => {
      e.preventDefault()
      const p = pointIn(el, e)
      renderer.current?.zoom(Math.exp(-e.deltaY * 0.0015), p.x, p.y)
    }
    el.addEventListener('wheel', onWheel, { passive: false })
    return () => el.removeEventListener('wheel', onWheel)
  }, [])

  const zoom = useCallback((f: number) => renderer.current?.zoom(f), [])
  return (
    <div className="graph-canvas" ref={box}>
      <canvas
        ref={canvas}
        role="img"
        aria-label={`Flow graph: ${model.nodes.length} nodes and ${model.edges.length} edges; the table below lists the edges`}
        data-nodes={model.nodes.length}
        data-edges={model.edges.length}
        onPointerDown={(e) => {
          try {
            canvas.current!.setPointerCapture(e.pointerId)
          } catch {
            // not an active pointer (a synthetic event): panning works without the capture
          }
          drag.current = { x: e.clientX, y: e.clientY, moved: false }
        }}
        onPointerMove={(e) => {
          const d = drag.current
          const r = renderer.current
          if (!r) return
          if (d) {
            const dx = e.clientX - d.x
            const dy = e.clientY - d.y
            if (d.moved || Math.abs(dx) + Math.abs(dy) > 3) {
              d.moved = true
              r.pan(dx, dy)
              d.x = e.clientX
              d.y = e.clientY
            }
            return
          }
          const p = local(e)
          const hit = r.hitTest(p.x, p.y)
          const hovered = hit && 'node' in hit ? hit.node : -1
          if (hovered !== r.hoveredNode) {
            r.hoveredNode = hovered
            r.requestDraw()
          }
          canvas.current!.style.cursor = hit ? 'pointer' : 'grab'
        }}
        onPointerUp={(e) => {
          const d = drag.current
          drag.current = undefined
          if (!d || d.moved || !renderer.current) return
          const p = local(e)
          onSelect(renderer.current.hitTest(p.x, p.y))
        }}
      />
      <fieldset className="zoom">
        <legend className="visually-hidden">Zoom</legend>
        <button type="button" onClick={() => zoom(1.4)} aria-label="Zoom in">
          +
        </button>
        <button type="button" onClick={() => zoom(1 / 1.4)} aria-label="Zoom out">
          −
        </button>
        <button type="button" onClick={() => renderer.current?.fit()}>
          Fit
        </button>
      </fieldset>
      <span className="visually-hidden" role="status">
        {layoutState === 'laid out' ? 'Layout settled.' : ''}
      </span>
    </div>
  )
}

function pointIn(el: HTMLElement, e: { clientX: number; clientY: number }): { x: number; y: number } {
  const b = el.getBoundingClientRect()
  return { x: e.clientX - b.left, y: e.clientY - b.top }
}

function Legend() {
  return (
    <ul className="legend" aria-label="Legend">
      {(['allowed', 'unidentified', 'denied'] as const).map((v) => (
        <li key={v}>
          <span className="line" style={{ background: VERDICT_COLOR[v] }} aria-hidden="true" /> {v} flows
        </li>
      ))}
      {(Object.keys(KIND_COLOR) as Array<keyof typeof KIND_COLOR>).map((k) => (
        <li key={k}>
          <span className="dot" style={{ background: KIND_COLOR[k] }} aria-hidden="true" />{' '}
          {k === 'external' ? 'outside name' : k === 'unidentified' ? 'unidentified source' : 'workload'}
        </li>
      ))}
    </ul>
  )
}

function edgeName(m: Model, i: number): string {
  const e = m.edges[i]!
  return `${m.nodes[m.ends[i * 2]!]!.label} → ${m.nodes[m.ends[i * 2 + 1]!]!.label}:${e.port}`
}

function EdgeTable({
  model,
  visible,
  onShow,
}: {
  model: Model
  visible: Uint8Array
  onShow(edge: number): void
}) {
  const rows = useMemo(() => {
    const idx: number[] = []
    for (let i = 0; i < model.edges.length; i++) if (visible[i]) idx.push(i)
    idx.sort((a, b) => model.edges[b]!.flows - model.edges[a]!.flows)
    return idx
  }, [model, visible])
  return (
    <table className="edges">
      <caption>
        Edges by number of flows
        {rows.length > TABLE_ROWS ? ` (the busiest ${TABLE_ROWS} of ${rows.length})` : ''}
      </caption>
      <thead>
        <tr>
          <th scope="col">Source</th>
          <th scope="col">Destination</th>
          <th scope="col">Port</th>
          <th scope="col">Verdict</th>
          <th scope="col">Flows</th>
          <th scope="col">Last seen</th>
          <th scope="col">Details</th>
        </tr>
      </thead>
      <tbody>
        {rows.slice(0, TABLE_ROWS).map((i) => {
          const e = model.edges[i]!
          return (
            <tr key={e.id}>
              <td className="mono">{model.nodes[model.ends[i * 2]!]!.label}</td>
              <td className="mono">{model.nodes[model.ends[i * 2 + 1]!]!.label}</td>
              <td>{e.port}</td>
              <td>
                <span className={`badge verdict-${model.verdicts[i]}`}>{model.verdicts[i]}</span>
              </td>
              <td>{e.flows}</td>
              <td>{relative(e.lastSeen)}</td>
              <td>
                <button
                  type="button"
                  aria-label={`Show flows of ${edgeName(model, i)}`}
                  onClick={() => onShow(i)}
                >
                  Show flows
                </button>
              </td>
            </tr>
          )
        })}
      </tbody>
    </table>
  )
}

function Details({
  td,
  model,
  since,
  selected,
  onClose,
  onFilter,
}: {
  td: string
  model: Model
  since: number
  selected: { edge: number } | { node: number } | undefined
  onClose(): void
  onFilter(identity: string): void
}) {
  if (!selected) {
    return (
      <aside className="details" aria-label="Details">
        <p className="muted">
          Click an edge to see its flows, or a node to see what it is. Drag to pan, scroll to zoom.
        </p>
      </aside>
    )
  }
  if ('node' in selected) {
    const n = model.nodes[selected.node]!
    const degree = model.edges.filter(
      (_, i) => model.ends[i * 2] === selected.node || model.ends[i * 2 + 1] === selected.node,
    ).length
    return (
      <aside className="details" aria-label="Node details">
        <h2>
          {n.kind === 'workload'
            ? 'Workload'
            : n.kind === 'external'
              ? 'Outside name'
              : 'Unidentified source'}
        </h2>
        <p className="mono break">{n.label}</p>
        <p>
          Namespace: {model.namespaces[selected.node] ?? '—'}. {degree} edge{degree === 1 ? '' : 's'}.
        </p>
        <div className="actions left">
          <button type="button" onClick={() => onFilter(n.label)}>
            Show only this node's flows
          </button>
          <button type="button" onClick={onClose}>
            Close details
          </button>
        </div>
      </aside>
    )
  }
  return (
    <EdgeDetails
      key={selected.edge}
      td={td}
      model={model}
      index={selected.edge}
      since={since}
      onClose={onClose}
    />
  )
}

function EdgeDetails({
  td,
  model,
  index,
  since,
  onClose,
}: {
  td: string
  model: Model
  index: number
  since: number
  onClose(): void
}) {
  const edge = model.edges[index]!
  const source = model.nodes[model.ends[index * 2]!]!
  const target = model.nodes[model.ends[index * 2 + 1]!]!
  const [flows, setFlows] = useState<FlowView[]>()
  const [error, setError] = useState<Error>()
  useEffect(() => {
    const id = source.spiffeId ?? target.spiffeId
    const q = `/flows?since=${since}&limit=5000${id ? `&spiffeId=${encodeURIComponent(id)}` : ''}`
    get<{ flows: FlowView[] }>(tdPath(td, q)).then(
      (r) => setFlows(flowsOfEdge(edge, r.flows)),
      (e: Error) => setError(e),
    )
  }, [td, since, edge, source.spiffeId, target.spiffeId])
  const processes = useMemo(() => {
    const seen = new Map<string, { path: string; sha256?: string | undefined; count: number }>()
    for (const f of flows ?? []) {
      if (!f.source.path && !f.source.sha256) continue
      const key = `${f.source.path}|${f.source.sha256}`
      const p = seen.get(key) ?? { path: f.source.path ?? 'unknown path', sha256: f.source.sha256, count: 0 }
      p.count++
      seen.set(key, p)
    }
    return [...seen.values()]
  }, [flows])
  const verdict = model.verdicts[index]!
  return (
    <aside className="details" aria-labelledby="edge-heading">
      <h2 id="edge-heading">Flows of this edge</h2>
      <p className="mono break">
        {source.label} → {target.label}:{edge.port}
      </p>
      <p>
        <span className={`badge verdict-${verdict}`}>{verdict}</span> {edge.flows} flow
        {edge.flows === 1 ? '' : 's'} (allowed {edge.verdicts.allowed}, unidentified{' '}
        {edge.verdicts.unidentified}, denied {edge.verdicts.denied}); {formatBytes(edge.bytesOut)} out,{' '}
        {formatBytes(edge.bytesIn)} in; last {relative(edge.lastSeen)}.
      </p>
      <p>
        Decided by:{' '}
        {edge.rules.length ? (
          edge.rules.map((r) => <code key={r}>{r} </code>)
        ) : (
          <span className="muted">no rule (the mode's default)</span>
        )}
      </p>
      <h3>Processes behind it</h3>
      {!flows && !error && <Loading what="flows" />}
      {error && (
        <div className="alert error" role="alert">
          {error.message}
        </div>
      )}
      {flows && processes.length === 0 && (
        <p className="muted">No process was reported (the far side's reports only).</p>
      )}
      {processes.length > 0 && (
        <ul className="processes">
          {processes.map((p) => (
            <li key={`${p.path}|${p.sha256}`}>
              <span className="mono">{p.path}</span> ({p.count} flow{p.count === 1 ? '' : 's'})
              <br />
              code-DNA: <code className="mono break">{p.sha256 ?? 'unknown'}</code>
            </li>
          ))}
        </ul>
      )}
      {flows && (
        <table className="flows">
          <caption>Flows, newest first{flows.length > 100 ? ' (the newest 100)' : ''}</caption>
          <thead>
            <tr>
              <th scope="col">Started</th>
              <th scope="col">Verdict</th>
              <th scope="col">Rule</th>
              <th scope="col">Reason</th>
              <th scope="col">PID</th>
            </tr>
          </thead>
          <tbody>
            {flows.slice(0, 100).map((f) => (
              <tr key={`${f.id}-${f.side}`}>
                <td title={formatTime(f.start)}>{new Date(f.start).toLocaleTimeString()}</td>
                <td>
                  <span className={`badge verdict-${f.verdict}`}>{f.verdict}</span>
                </td>
                <td>{f.rule ?? '—'}</td>
                <td>{f.reason}</td>
                <td title={f.source.path}>{f.source.pid ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <button type="button" onClick={onClose}>
        Close details
      </button>
    </aside>
  )
}

export type { Verdict }
