// A worker_threads pool that verifies CSRs and signs X509-SVIDs off the main thread.
//
// - Issuers (intermediate CA cert + private KeyObject) are sent to every worker by postMessage and kept
//   in memory only; the main thread keeps its copy to replay them to a replacement worker.
// - issue() queues its items; once per event-loop turn (setImmediate) the queue is split into chunks over
//   the least-loaded workers, so many small concurrent requests travel as few messages. Each item
//   succeeds or fails on its own. A worker crash fails the requests it held and the worker is replaced.
// - size 0, or no worker able to start, means signing inline on the main thread.
// - Idle workers are unref'd, so a forgotten pool does not keep the process alive.

import type { KeyObject } from 'node:crypto'
import { Worker } from 'node:worker_threads'
import {
  type FromWorker,
  issueBatch,
  type SigningItem,
  type SigningResult,
  type ToWorker,
  WORKER_ROLE,
} from './signing-worker.ts'
import { X509SvidIssuer } from './x509-svid.ts'

export type { SigningItem, SigningResult }

export interface SigningPoolOptions {
  /** Number of worker threads; 0 signs inline on the main thread. */
  size: number
  /** Smallest chunk sent to a worker (default 1: an item costs far more than a message). */
  minChunk?: number
  /** Largest chunk sent as one message, so results stream back and load spreads (default 64). */
  maxChunk?: number
  /** Called when a worker fails; the pool itself recovers. */
  onWorkerError?: (err: Error) => void
}

interface Request {
  results: SigningResult[]
  remaining: number
  settled: boolean
  resolve: (results: SigningResult[]) => void
  reject: (err: Error) => void
}

interface Entry {
  request: Request
  index: number
  item: SigningItem
}

interface Pending {
  issuerId: string
  entries: Entry[]
}

interface Slot {
  worker: Worker
  ready: boolean
  outstanding: number
  pending: Map<number, Pending>
  exited: boolean
}

const WORKER_EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
const WORKER_ENTRY = new URL(`./signing-worker${WORKER_EXT}`, import.meta.url).href

// Under tsx the worker entry is TypeScript. Node 20 runs neither `--import` preloads nor their loader
// hooks in worker threads (verified on 20.20: `new Worker(new URL('./x.ts', ...))` fails with "Unknown
// file extension"), so a tiny CommonJS bootstrap registers tsx in the worker before importing the entry.
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
(async () => {
  if (workerData.tsxApi) (await import(workerData.tsxApi)).register();
  await import(workerData.entry);
})().catch((err) => process.nextTick(() => { throw err }));
`

function tsxApi(): string | undefined {
  if (WORKER_EXT !== '.ts') return undefined
  try {
    return import.meta.resolve('tsx/esm/api')
  } catch {
    // Without tsx the worker cannot load; the pool then signs inline.
    return undefined
  }
}

export class SigningPool {
  readonly size: number
  readonly #minChunk: number
  readonly #maxChunk: number
  readonly #onWorkerError: ((err: Error) => void) | undefined
  readonly #issuers = new Map<string, { certDer: Buffer; privateKey: KeyObject; inline: X509SvidIssuer }>()
  readonly #slots: Slot[] = []
  #queue = new Map<string, Entry[]>()
  #flushScheduled = false
  #nextId = 1
  #closed = false

  constructor(options: SigningPoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 0)
      throw new Error('pool size must be an integer >= 0')
    this.size = options.size
    this.#minChunk = Math.max(1, options.minChunk ?? 1)
    this.#maxChunk = Math.max(this.#minChunk, options.maxChunk ?? 64)
    this.#onWorkerError = options.onWorkerError
    for (let i = 0; i < options.size; i++) this.#slots.push(this.#spawn())
  }

  /** Workers currently running (not exited). */
  get liveWorkers(): number {
    return this.#slots.filter((s) => !s.exited).length
  }

  /**
   * Loads an issuer into every worker. Validates it on the main thread first and throws synchronously if
   * it is unusable (malformed certificate, key mismatch, not a CA of one trust domain).
   */
  setIssuer(issuerId: string, certDer: Buffer, privateKey: KeyObject): void {
    this.#assertOpen()
    const inline = new X509SvidIssuer({ certDer, privateKey })
    this.#issuers.set(issuerId, { certDer, privateKey, inline })
    for (const slot of this.#slots) this.#post(slot, { type: 'setIssuer', issuerId, certDer, privateKey })
  }

  removeIssuer(issuerId: string): void {
    if (!this.#issuers.delete(issuerId)) return
    for (const slot of this.#slots) this.#post(slot, { type: 'removeIssuer', issuerId })
  }

  /** Verifies and signs a batch; results are in item order. Rejects only if the pool or a worker fails. */
  async issue(issuerId: string, items: SigningItem[]): Promise<SigningResult[]> {
    this.#assertOpen()
    if (items.length === 0) return []
    if (this.liveWorkers === 0) return issueBatch(this.#issuers.get(issuerId)?.inline, items)
    return new Promise((resolve, reject) => {
      const request: Request = {
        results: new Array(items.length),
        remaining: items.length,
        settled: false,
        resolve,
        reject,
      }
      let queue = this.#queue.get(issuerId)
      if (!queue) {
        queue = []
        this.#queue.set(issuerId, queue)
      }
      for (let index = 0; index < items.length; index++) queue.push({ request, index, item: items[index]! })
      if (!this.#flushScheduled) {
        this.#flushScheduled = true
        setImmediate(() => this.#flush())
      }
    })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#issuers.clear()
    const closed = new Error('signing pool closed')
    for (const entries of this.#queue.values()) for (const e of entries) this.#reject(e.request, closed)
    this.#queue.clear()
    await Promise.all(
      this.#slots.map(async (slot) => {
        this.#fail(slot, closed)
        await slot.worker.terminate()
        slot.exited = true
      }),
    )
  }

  #flush(): void {
    this.#flushScheduled = false
    const queue = this.#queue
    this.#queue = new Map()
    const live = this.liveWorkers
    for (const [issuerId, entries] of queue) {
      if (live === 0) {
        this.#inline(issuerId, entries)
        continue
      }
      // Two chunks per worker when there is enough work: a worker then has its next chunk queued while
      // the results of the previous one travel back, and never idles on the round trip.
      const chunks = Math.max(
        1,
        Math.min(
          Math.floor(entries.length / this.#minChunk),
          Math.max(2 * live, Math.ceil(entries.length / this.#maxChunk)),
        ),
      )
      const size = Math.ceil(entries.length / chunks)
      for (let start = 0; start < entries.length; start += size) {
        this.#send(issuerId, entries.slice(start, start + size))
      }
    }
  }

  #complete(entry: Entry, result: SigningResult): void {
    const request = entry.request
    if (request.settled) return
    request.results[entry.index] = result
    if (--request.remaining === 0) {
      request.settled = true
      request.resolve(request.results)
    }
  }

  #reject(request: Request, err: Error): void {
    if (request.settled) return
    request.settled = true
    request.reject(err)
  }

  #inline(issuerId: string, entries: Entry[]): void {
    const results = issueBatch(
      this.#issuers.get(issuerId)?.inline,
      entries.map((e) => e.item),
    )
    for (let i = 0; i < entries.length; i++) this.#complete(entries[i]!, results[i]!)
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('signing pool is closed')
  }

  #send(issuerId: string, entries: Entry[]): void {
    const slot = this.#leastLoaded()
    const id = this.#nextId++
    const transfer: ArrayBuffer[] = []
    // Exact-size copies, transferred: the caller's buffers may be views into larger (pooled) memory.
    const wire = entries.map(({ item }) => {
      const csrDer = new Uint8Array(item.csrDer)
      transfer.push(csrDer.buffer)
      const out: SigningItem = {
        csrDer,
        spiffeId: item.spiffeId,
        dnsNames: item.dnsNames,
        notBefore: item.notBefore,
        notAfter: item.notAfter,
      }
      if (item.serial) out.serial = new Uint8Array(item.serial)
      return out
    })
    slot.pending.set(id, { issuerId, entries })
    if (slot.outstanding === 0) slot.worker.ref()
    slot.outstanding += entries.length
    this.#post(slot, { type: 'issue', id, issuerId, items: wire }, transfer)
  }

  #leastLoaded(): Slot {
    let best: Slot | undefined
    for (const slot of this.#slots) {
      if (slot.exited) continue
      if (!best || slot.outstanding < best.outstanding) best = slot
    }
    return best!
  }

  #post(slot: Slot, msg: ToWorker, transfer: ArrayBuffer[] = []): void {
    if (!slot.exited) slot.worker.postMessage(msg, transfer)
  }

  #spawn(): Slot {
    const worker = new Worker(BOOTSTRAP, {
      eval: true,
      workerData: { role: WORKER_ROLE, entry: WORKER_ENTRY, tsxApi: tsxApi() },
    })
    worker.unref()
    const slot: Slot = { worker, ready: false, outstanding: 0, pending: new Map(), exited: false }
    worker.on('message', (msg: FromWorker) => this.#onMessage(slot, msg))
    worker.on('error', (err) => {
      this.#onWorkerError?.(err)
      this.#fail(slot, new Error(`signing worker failed: ${err.message}`))
    })
    worker.on('messageerror', (err) => this.#onWorkerError?.(err))
    worker.on('exit', (code) => {
      slot.exited = true
      this.#fail(slot, new Error(`signing worker exited with code ${code}`))
      // Replace a worker that crashed after starting; one that never started would fail again.
      if (!this.#closed && slot.ready) {
        const index = this.#slots.indexOf(slot)
        if (index !== -1) this.#slots[index] = this.#respawn()
      }
    })
    return slot
  }

  #respawn(): Slot {
    const slot = this.#spawn()
    for (const [issuerId, { certDer, privateKey }] of this.#issuers) {
      this.#post(slot, { type: 'setIssuer', issuerId, certDer, privateKey })
    }
    return slot
  }

  #onMessage(slot: Slot, msg: FromWorker): void {
    if (msg.type === 'ready') {
      slot.ready = true
    } else if (msg.type === 'result') {
      const pending = slot.pending.get(msg.id)
      if (!pending) return
      slot.pending.delete(msg.id)
      this.#settled(slot, pending)
      msg.results.forEach((r, i) => {
        if (r.ok) r.der = Buffer.from(r.der.buffer, r.der.byteOffset, r.der.byteLength)
        this.#complete(pending.entries[i]!, r)
      })
    } else if (msg.type === 'issuerError') {
      this.#onWorkerError?.(new Error(`signing worker rejected issuer ${msg.issuerId}: ${msg.message}`))
    }
  }

  #settled(slot: Slot, pending: Pending): void {
    slot.outstanding -= pending.entries.length
    if (slot.outstanding === 0 && !slot.exited) slot.worker.unref()
  }

  // Requests held by a worker that never started were not processed: sign them inline instead. Those of
  // a worker that crashed while running are rejected, not retried, in case they caused the crash.
  #fail(slot: Slot, err: Error): void {
    for (const pending of slot.pending.values()) {
      this.#settled(slot, pending)
      if (!slot.ready && !this.#closed) this.#inline(pending.issuerId, pending.entries)
      else for (const e of pending.entries) this.#reject(e.request, err)
    }
    slot.pending.clear()
  }
}
