// A force-directed layout for graphs of a few thousand edges, on typed arrays: repulsion between nodes
// through a uniform grid (only near neighbours push), springs along edges, a pull to the centre, and a
// cooling step limit. Pure, so the Web Worker runs it and tests could too.

export interface LayoutInput {
  nodeCount: number
  /** Pairs of node indices: [s0, t0, s1, t1, ...]. */
  edges: Uint32Array
}

/** Spacing of the layout, in world units. */
export const SPACING = 40

/** A sunflower (phyllotaxis) spiral, most connected nodes in the middle: a decent picture at once. */
export function initialPositions(input: LayoutInput): Float32Array {
  const degree = new Uint32Array(input.nodeCount)
  for (let i = 0; i < input.edges.length; i++) degree[input.edges[i]!]!++
  const order = Array.from({ length: input.nodeCount }, (_, i) => i).sort((a, b) => degree[b]! - degree[a]!)
  const pos = new Float32Array(input.nodeCount * 2)
  const golden = Math.PI * (3 - Math.sqrt(5))
  order.forEach((node, rank) => {
    const r = SPACING * 0.9 * Math.sqrt(rank + 0.5)
    pos[node * 2] = r * Math.cos(rank * golden)
    pos[node * 2 + 1] = r * Math.sin(rank * golden)
  })
  return pos
}

export class ForceLayout {
  readonly pos: Float32Array
  readonly #disp: Float32Array
  readonly #n: number
  readonly #edges: Uint32Array
  #temperature: number
  iterations = 0

  constructor(input: LayoutInput, pos = initialPositions(input)) {
    this.#n = input.nodeCount
    this.#edges = input.edges
    this.pos = pos
    this.#disp = new Float32Array(this.#n * 2)
    this.#temperature = SPACING * 2
  }

  /** Runs `count` iterations; returns how far the nodes moved on average in the last one. */
  step(count: number): number {
    const n = this.#n
    const pos = this.pos
    const disp = this.#disp
    const k = SPACING
    const k2 = k * k
    const cell = k * 2
    let moved = 0
    for (let it = 0; it < count; it++) {
      disp.fill(0)
      // Repulsion within the 3x3 neighbourhood of each node's grid cell.
      const grid = new Map<number, number[]>()
      const key = (cx: number, cy: number) => (cx + 32768) * 65536 + (cy + 32768)
      for (let i = 0; i < n; i++) {
        const cx = Math.floor(pos[i * 2]! / cell)
        const cy = Math.floor(pos[i * 2 + 1]! / cell)
        const bucket = grid.get(key(cx, cy))
        if (bucket) bucket.push(i)
        else grid.set(key(cx, cy), [i])
      }
      for (let i = 0; i < n; i++) {
        const x = pos[i * 2]!
        const y = pos[i * 2 + 1]!
        const cx = Math.floor(x / cell)
        const cy = Math.floor(y / cell)
        for (let dx = -1; dx <= 1; dx++) {
          for (let dy = -1; dy <= 1; dy++) {
            const bucket = grid.get(key(cx + dx, cy + dy))
            if (!bucket) continue
            for (const j of bucket) {
              if (j <= i) continue
              let ddx = x - pos[j * 2]!
              let ddy = y - pos[j * 2 + 1]!
              let d2 = ddx * ddx + ddy * ddy
              if (d2 < 0.01) {
                ddx = (i - j) * 0.01 + 0.1
                ddy = 0.1
                d2 = ddx * ddx + ddy * ddy
              }
              if (d2 > cell * cell) continue
              const f = k2 / d2
              disp[i * 2]! += ddx * f
              disp[i * 2 + 1]! += ddy * f
              disp[j * 2]! -= ddx * f
              disp[j * 2 + 1]! -= ddy * f
            }
          }
        }
      }
      // Springs along edges.
      const e = this.#edges
      for (let m = 0; m < e.length; m += 2) {
        const a = e[m]!
        const b = e[m + 1]!
        if (a === b) continue
        const ddx = pos[a * 2]! - pos[b * 2]!
        const ddy = pos[a * 2 + 1]! - pos[b * 2 + 1]!
        const d = Math.sqrt(ddx * ddx + ddy * ddy) || 0.01
        const f = (d / k) * 0.5
        disp[a * 2]! -= ddx * f
        disp[a * 2 + 1]! -= ddy * f
        disp[b * 2]! += ddx * f
        disp[b * 2 + 1]! += ddy * f
      }
      // Gravity keeps disconnected parts near the middle; moves are capped by the temperature.
      const t = this.#temperature
      moved = 0
      for (let i = 0; i < n; i++) {
        const x = pos[i * 2]!
        const y = pos[i * 2 + 1]!
        const gx = disp[i * 2]! - x * 0.02
        const gy = disp[i * 2 + 1]! - y * 0.02
        const len = Math.sqrt(gx * gx + gy * gy) || 1
        const step = Math.min(len, t)
        pos[i * 2] = x + (gx / len) * step
        pos[i * 2 + 1] = y + (gy / len) * step
        moved += step
      }
      this.#temperature = Math.max(0.5, t * 0.985)
      this.iterations++
    }
    return n ? moved / n : 0
  }
}
