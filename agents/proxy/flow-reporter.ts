// Sends flow records to the trust service in batches: every second, or sooner when a batch is full.
// The queue is bounded: while the server is unreachable the oldest records are dropped (and counted, and
// logged once a minute) rather than letting a busy node's agent grow without limit.

import type { FlowRecord } from '../../services/flows/flow.ts'
import type { Log } from '../workload/log.ts'

export type FlowSender = (flows: FlowRecord[]) => Promise<void>

export interface FlowReporterOptions {
  send: FlowSender
  log: Log
  /** Default 1000 ms. */
  intervalMs?: number
  /** Records per request; default 500 (the server takes up to 1000). */
  batchSize?: number
  /** Records kept while the server is away; default 20,000. */
  maxQueue?: number
}

export class FlowReporter {
  readonly #opts: Required<Omit<FlowReporterOptions, 'log' | 'send'>> & FlowReporterOptions
  #queue: FlowRecord[] = []
  #timer: NodeJS.Timeout | undefined
  #sending: Promise<void> | undefined
  #closed = false
  dropped = 0
  sent = 0
  #lastDropLog = 0

  constructor(opts: FlowReporterOptions) {
    this.#opts = { intervalMs: 1000, batchSize: 500, maxQueue: 20_000, ...opts }
  }

  report(record: FlowRecord): void {
    if (this.#closed) return
    this.#queue.push(record)
    if (this.#queue.length > this.#opts.maxQueue) {
      const over = this.#queue.length - this.#opts.maxQueue
      this.#queue.splice(0, over)
      this.dropped += over
      const now = Date.now()
      if (now - this.#lastDropLog > 60_000) {
        this.#lastDropLog = now
        this.#opts.log.warn({ dropped: this.dropped }, 'flow report queue full; dropping the oldest records')
      }
    }
    if (this.#queue.length >= this.#opts.batchSize) void this.flush()
    else this.#timer ??= setTimeout(() => void this.flush(), this.#opts.intervalMs).unref()
  }

  /** Sends everything queued now. */
  flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#sending ??= this.#drain().finally(() => {
      this.#sending = undefined
    })
    return this.#sending
  }

  async close(): Promise<void> {
    await this.flush().catch(() => {})
    this.#closed = true
  }

  async #drain(): Promise<void> {
    while (this.#queue.length) {
      const batch = this.#queue.slice(0, this.#opts.batchSize)
      try {
        await this.#opts.send(batch)
      } catch (err) {
        const status = (err as { status?: number }).status ?? 0
        if (status >= 400 && status < 500 && status !== 429) {
          // The server will never take this batch: drop it (retrying would block every later record).
          const sent = new Set(batch)
          this.#queue = this.#queue.filter((r) => !sent.has(r))
          this.dropped += batch.length
          this.#opts.log.warn(
            { err: (err as Error).message, dropped: batch.length },
            'the trust service refused a batch of flow reports; dropped it',
          )
          continue
        }
        this.#opts.log.warn(
          { err: (err as Error).message, queued: this.#queue.length },
          'sending flow reports failed; will retry',
        )
        if (!this.#closed) this.#timer ??= setTimeout(() => void this.flush(), 5000).unref()
        return
      }
      // Drop what was sent (records may have been dropped from the head meanwhile: match by identity).
      const sent = new Set(batch)
      this.#queue = this.#queue.filter((r) => !sent.has(r))
      this.sent += batch.length
    }
  }
}
