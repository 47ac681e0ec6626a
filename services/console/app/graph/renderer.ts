// Draws the flow graph on a <canvas>. Thousands of edges are the expensive part: rasterizing 5,000
// antialiased lines costs 50-100 ms a frame in software (a browser without a GPU), so the edges are
// drawn into a layer that is kept while the user pans or zooms (the frame only moves or scales that
// bitmap) and drawn again, sharp, once the view rests or the data change. Nodes, labels and the
// selection are drawn on top every frame (cheap). Hit-testing is geometric: the nearest node, else the
// nearest edge within a few pixels of the pointer.

import type { Verdict } from '../api.ts'

export const VERDICT_COLOR: Record<Verdict, string> = {
  allowed: '#2e7d32',
  unidentified: '#e08600',
  denied: '#d32f2f',
}

export const KIND_COLOR = {
  workload: '#1f6feb',
  external: '#8250df',
  unidentified: '#6e7781',
} as const

export interface DrawNode {
  label: string
  kind: keyof typeof KIND_COLOR
}

export interface DrawEdge {
  source: number
  target: number
  verdict: Verdict
}

export interface Camera {
  x: number
  y: number
  scale: number
}

const NODE_RADIUS = 6
/** The edge layer covers this much more than the view on each side, so short pans reveal no gap. */
const MARGIN = 0.25
/** The view counts as resting this long after the last pan or zoom. */
const REST_MS = 150
/** Segments per path: one long path of translucent segments makes the rasterizer compute their union. */
const SEGMENTS_PER_PATH = 64

export class GraphRenderer {
  readonly canvas: HTMLCanvasElement
  camera: Camera = { x: 0, y: 0, scale: 1 }
  nodes: DrawNode[] = []
  edges: DrawEdge[] = []
  positions: Float32Array = new Float32Array(0)
  visibleEdges: Uint8Array = new Uint8Array(0)
  visibleNodes: Uint8Array = new Uint8Array(0)
  selectedEdge = -1
  hoveredNode = -1
  onDraw?: (ms: number, layer: boolean) => void
  #frame = 0
  #width = 0
  #height = 0
  readonly #layer: HTMLCanvasElement
  #layerCamera: Camera | undefined
  #layerDirty = true
  #restingAt = 0
  #restTimer: ReturnType<typeof setTimeout> | undefined

  constructor(canvas: HTMLCanvasElement) {
    this.canvas = canvas
    this.#layer = document.createElement('canvas')
  }

  /** The edges, their visibility or the positions changed: the edge layer is drawn again. */
  invalidate(): void {
    this.#layerDirty = true
    this.requestDraw()
  }

  resize(width: number, height: number): void {
    const dpr = window.devicePixelRatio || 1
    this.#width = width
    this.#height = height
    this.canvas.width = Math.round(width * dpr)
    this.canvas.height = Math.round(height * dpr)
    this.canvas.style.width = `${width}px`
    this.canvas.style.height = `${height}px`
    this.#layer.width = Math.round(width * (1 + 2 * MARGIN) * dpr)
    this.#layer.height = Math.round(height * (1 + 2 * MARGIN) * dpr)
    this.invalidate()
  }

  /** Frames the visible nodes. */
  fit(): void {
    let minX = Infinity
    let minY = Infinity
    let maxX = -Infinity
    let maxY = -Infinity
    for (let i = 0; i < this.nodes.length; i++) {
      if (!this.visibleNodes[i]) continue
      const x = this.positions[i * 2]!
      const y = this.positions[i * 2 + 1]!
      minX = Math.min(minX, x)
      maxX = Math.max(maxX, x)
      minY = Math.min(minY, y)
      maxY = Math.max(maxY, y)
    }
    if (!Number.isFinite(minX)) {
      this.camera = { x: 0, y: 0, scale: 1 }
    } else {
      const w = Math.max(1, maxX - minX)
      const h = Math.max(1, maxY - minY)
      const scale = Math.min(4, Math.max(0.02, Math.min((this.#width - 60) / w, (this.#height - 60) / h)))
      this.camera = { x: (minX + maxX) / 2, y: (minY + maxY) / 2, scale }
    }
    this.requestDraw()
  }

  toScreen(x: number, y: number): { x: number; y: number } {
    const c = this.camera
    return { x: (x - c.x) * c.scale + this.#width / 2, y: (y - c.y) * c.scale + this.#height / 2 }
  }

  toWorld(sx: number, sy: number): { x: number; y: number } {
    const c = this.camera
    return { x: (sx - this.#width / 2) / c.scale + c.x, y: (sy - this.#height / 2) / c.scale + c.y }
  }

  pan(dx: number, dy: number): void {
    this.camera.x -= dx / this.camera.scale
    this.camera.y -= dy / this.camera.scale
    this.#moving()
  }

  /** Zooms by `factor` keeping the world point under (sx, sy) in place. */
  zoom(factor: number, sx = this.#width / 2, sy = this.#height / 2): void {
    const before = this.toWorld(sx, sy)
    this.camera.scale = Math.min(20, Math.max(0.02, this.camera.scale * factor))
    const after = this.toWorld(sx, sy)
    this.camera.x += before.x - after.x
    this.camera.y += before.y - after.y
    this.#moving()
  }

  /** While the view moves, frames reuse the edge layer; once it rests, the layer is drawn again. */
  #moving(): void {
    this.#restingAt = performance.now() + REST_MS
    clearTimeout(this.#restTimer)
    this.#restTimer = setTimeout(() => this.requestDraw(), REST_MS + 5)
    this.requestDraw()
  }

  requestDraw(): void {
    if (this.#frame) return
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0
      this.draw()
    })
  }

  draw(): void {
    const started = performance.now()
    const ctx = this.canvas.getContext('2d')
    if (!ctx) return
    const dpr = window.devicePixelRatio || 1
    const c = this.camera
    const moving = started < this.#restingAt
    const lc = this.#layerCamera
    // Reuse the layer while the view moves, unless it would be scaled beyond recognition.
    const reusable =
      lc !== undefined &&
      !this.#layerDirty &&
      (moving ? Math.abs(Math.log(c.scale / lc.scale)) < 1 : sameCamera(lc, c))
    let layerDrawn = false
    if (!reusable) {
      this.#drawEdgeLayer()
      layerDrawn = true
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0)
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height)
    // Where the layer's top-left corner is now, and how much it is scaled.
    const l = this.#layerCamera!
    const k = c.scale / l.scale
    const lw = this.#width * (1 + 2 * MARGIN)
    const lh = this.#height * (1 + 2 * MARGIN)
    const worldX = l.x - lw / 2 / l.scale
    const worldY = l.y - lh / 2 / l.scale
    const sx = (worldX - c.x) * c.scale + this.#width / 2
    const sy = (worldY - c.y) * c.scale + this.#height / 2
    ctx.imageSmoothingEnabled = k !== 1
    ctx.drawImage(this.#layer, sx * dpr, sy * dpr, lw * k * dpr, lh * k * dpr)
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0)
    this.#drawOverlay(ctx)
    this.onDraw?.(performance.now() - started, layerDrawn)
  }

  #drawEdgeLayer(): void {
    const ctx = this.#layer.getContext('2d')
    if (!ctx) return
    const dpr = window.devicePixelRatio || 1
    const c = { ...this.camera }
    this.#layerCamera = c
    this.#layerDirty = false
    const lw = this.#width * (1 + 2 * MARGIN)
    const lh = this.#height * (1 + 2 * MARGIN)
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0)
    ctx.clearRect(0, 0, lw, lh)
    const s = c.scale
    const ox = lw / 2 - c.x * s
    const oy = lh / 2 - c.y * s
    const pos = this.positions
    const arrows = s > 1.2 || this.edges.length < 400
    ctx.lineWidth = Math.max(0.6, Math.min(2, s))
    ctx.globalAlpha = this.edges.length > 1000 ? 0.45 : 0.8
    for (const verdict of ['allowed', 'unidentified', 'denied'] as const) {
      ctx.strokeStyle = VERDICT_COLOR[verdict]
      ctx.beginPath()
      let inPath = 0
      for (let i = 0; i < this.edges.length; i++) {
        const e = this.edges[i]!
        if (e.verdict !== verdict || !this.visibleEdges[i]) continue
        const x1 = pos[e.source * 2]! * s + ox
        const y1 = pos[e.source * 2 + 1]! * s + oy
        const x2 = pos[e.target * 2]! * s + ox
        const y2 = pos[e.target * 2 + 1]! * s + oy
        ctx.moveTo(x1, y1)
        ctx.lineTo(x2, y2)
        if (arrows) {
          const dx = x2 - x1
          const dy = y2 - y1
          const len = Math.hypot(dx, dy)
          if (len > 20) {
            const ux = dx / len
            const uy = dy / len
            const tipX = x2 - ux * (NODE_RADIUS + 1)
            const tipY = y2 - uy * (NODE_RADIUS + 1)
            ctx.moveTo(tipX - ux * 7 - uy * 4, tipY - uy * 7 + ux * 4)
            ctx.lineTo(tipX, tipY)
            ctx.lineTo(tipX - ux * 7 + uy * 4, tipY - uy * 7 - ux * 4)
          }
        }
        if (++inPath >= SEGMENTS_PER_PATH) {
          ctx.stroke()
          ctx.beginPath()
          inPath = 0
        }
      }
      ctx.stroke()
    }
    ctx.globalAlpha = 1
  }

  /** The selection, the nodes and their labels, drawn every frame. */
  #drawOverlay(ctx: CanvasRenderingContext2D): void {
    const c = this.camera
    const s = c.scale
    const ox = this.#width / 2 - c.x * s
    const oy = this.#height / 2 - c.y * s
    const pos = this.positions
    if (this.selectedEdge >= 0 && this.selectedEdge < this.edges.length) {
      const e = this.edges[this.selectedEdge]!
      ctx.strokeStyle = '#111'
      ctx.lineWidth = 4
      ctx.beginPath()
      ctx.moveTo(pos[e.source * 2]! * s + ox, pos[e.source * 2 + 1]! * s + oy)
      ctx.lineTo(pos[e.target * 2]! * s + ox, pos[e.target * 2 + 1]! * s + oy)
      ctx.stroke()
      ctx.strokeStyle = VERDICT_COLOR[e.verdict]
      ctx.lineWidth = 2
      ctx.stroke()
    }

    const r = Math.max(2.5, Math.min(NODE_RADIUS, NODE_RADIUS * s))
    for (const kind of ['workload', 'external', 'unidentified'] as const) {
      ctx.fillStyle = KIND_COLOR[kind]
      ctx.beginPath()
      for (let i = 0; i < this.nodes.length; i++) {
        if (this.nodes[i]!.kind !== kind || !this.visibleNodes[i]) continue
        const x = pos[i * 2]! * s + ox
        const y = pos[i * 2 + 1]! * s + oy
        if (x < -r || y < -r || x > this.#width + r || y > this.#height + r) continue
        ctx.moveTo(x + r, y)
        ctx.arc(x, y, r, 0, Math.PI * 2)
      }
      ctx.fill()
    }

    // Labels where there is room for them (canvas text: never interpreted as markup).
    let visibleCount = 0
    for (const v of this.visibleNodes) visibleCount += v
    const showAll = visibleCount <= 60 || s >= 1.5
    ctx.font = '11px system-ui, sans-serif'
    ctx.textBaseline = 'middle'
    let drawn = 0
    for (let i = 0; i < this.nodes.length && drawn < 300; i++) {
      if (!this.visibleNodes[i]) continue
      if (!showAll && i !== this.hoveredNode) continue
      const x = pos[i * 2]! * s + ox
      const y = pos[i * 2 + 1]! * s + oy
      if (x < -200 || y < -20 || x > this.#width + 20 || y > this.#height + 20) continue
      const label = this.nodes[i]!.label
      const text = label.length > 60 ? `${label.slice(0, 57)}…` : label
      if (i === this.hoveredNode) {
        const w = ctx.measureText(text).width
        ctx.fillStyle = 'rgba(255, 255, 255, 0.9)'
        ctx.fillRect(x + r + 1, y - 8, w + 4, 16)
      }
      ctx.fillStyle = '#1b1f24'
      ctx.fillText(text, x + r + 3, y)
      drawn++
    }
  }

  /** The node under (sx, sy), else the nearest edge within 6 px, else nothing. */
  hitTest(sx: number, sy: number): { node: number } | { edge: number } | undefined {
    const c = this.camera
    const pos = this.positions
    const w = this.toWorld(sx, sy)
    const nodeR = Math.max(8, NODE_RADIUS * c.scale + 2) / c.scale
    let best = -1
    let bestD = nodeR * nodeR
    for (let i = 0; i < this.nodes.length; i++) {
      if (!this.visibleNodes[i]) continue
      const dx = pos[i * 2]! - w.x
      const dy = pos[i * 2 + 1]! - w.y
      const d = dx * dx + dy * dy
      if (d <= bestD) {
        bestD = d
        best = i
      }
    }
    if (best >= 0) return { node: best }
    const tolerance = 6 / c.scale
    let bestEdge = -1
    let bestEdgeD = tolerance * tolerance
    for (let i = 0; i < this.edges.length; i++) {
      if (!this.visibleEdges[i]) continue
      const e = this.edges[i]!
      const ax = pos[e.source * 2]!
      const ay = pos[e.source * 2 + 1]!
      const bx = pos[e.target * 2]!
      const by = pos[e.target * 2 + 1]!
      const abx = bx - ax
      const aby = by - ay
      const len2 = abx * abx + aby * aby
      const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((w.x - ax) * abx + (w.y - ay) * aby) / len2))
      const px = ax + abx * t - w.x
      const py = ay + aby * t - w.y
      const d = px * px + py * py
      if (d < bestEdgeD) {
        bestEdgeD = d
        bestEdge = i
      }
    }
    return bestEdge >= 0 ? { edge: bestEdge } : undefined
  }

  /** The screen point in the middle of an edge (for tests and keyboard users' focus rings). */
  edgeMidpoint(index: number): { x: number; y: number } | undefined {
    const e = this.edges[index]
    if (!e) return undefined
    const pos = this.positions
    return this.toScreen(
      (pos[e.source * 2]! + pos[e.target * 2]!) / 2,
      (pos[e.source * 2 + 1]! + pos[e.target * 2 + 1]!) / 2,
    )
  }
}

function sameCamera(a: Camera, b: Camera): boolean {
  return a.x === b.x && a.y === b.y && a.scale === b.scale
}
