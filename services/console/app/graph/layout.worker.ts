// Runs the force layout off the main thread and posts positions as it goes, so the page draws a first
// picture at once and the layout settles while the user already pans and clicks.

import { ForceLayout } from './layout.ts'

interface Start {
  nodeCount: number
  edges: Uint32Array
  positions: Float32Array
  iterations: number
}

let generation = 0

self.onmessage = (event: MessageEvent<Start>) => {
  const mine = ++generation
  const { nodeCount, edges, positions, iterations } = event.data
  const layout = new ForceLayout({ nodeCount, edges }, positions)
  const batch = 10
  const tick = () => {
    if (mine !== generation) return
    const moved = layout.step(batch)
    const done = layout.iterations >= iterations || moved < 0.05
    ;(self as unknown as Worker).postMessage({ positions: layout.pos.slice(), done })
    if (!done) setTimeout(tick, 0)
  }
  tick()
}
