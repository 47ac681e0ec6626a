// Refreshes every federation of every trust domain at its bundle's refresh hint (clamped to 5 s - 1 h,
// 5 min without one; up to 10% early, so replicas drift apart), and backs off after failures (5 s
// doubling, at most 5 min). Runs in every server process: the writes are idempotent, and a refresh
// another replica made (a newer lastRefreshAt in the store) postpones this one's.
//
// The schedule lives in memory; the store is scanned again every `rescanMs`, and at once when a
// federation this process does not know about is created, or a trust domain changes.

import type { Clock } from '../clock.ts'
import type { Store } from '../store/store.ts'
import {
  clampRefresh,
  type FederationLog,
  type FederationService,
  MIN_REFRESH_SECONDS,
} from './federation-service.ts'

const MAX_BACKOFF_MS = 5 * 60_000

interface Slot {
  trustDomain: string
  foreign: string
  nextAt: number
  failures: number
  /** The lastRefreshAt last seen in the store. */
  seenRefreshAt: number
  running: boolean
}

export interface RefresherOptions {
  store: Store
  federation: FederationService
  clock: Clock
  log?: FederationLog
  random?: () => number
  tickMs?: number
  rescanMs?: number
}

export class FederationRefresher {
  readonly #opts: RefresherOptions
  readonly #random: () => number
  readonly #slots = new Map<string, Slot>()
  #timer: NodeJS.Timeout | undefined
  #unwatch: (() => void) | undefined
  #dirty = true
  #lastScan = 0
  #ticking = false
  #closed = false

  constructor(opts: RefresherOptions) {
    this.#opts = opts
    this.#random = opts.random ?? Math.random
  }

  start(): void {
    this.#unwatch = this.#opts.store.watch((event) => {
      if (event.kind === 'trust-domain') this.#dirty = true
      else if (event.kind === 'bundle' && event.id !== undefined) {
        if (!this.#slots.has(key(event.trustDomain, event.id))) this.#dirty = true
      }
    })
    const every = this.#opts.tickMs ?? 1000
    this.#timer = setInterval(() => void this.tick(), every)
    this.#timer.unref()
  }

  /** One round: rescan when due, then refresh what is due. Exposed for tests. */
  async tick(): Promise<void> {
    if (this.#ticking || this.#closed) return
    this.#ticking = true
    try {
      const now = this.#opts.clock.now()
      if (this.#dirty || now - this.#lastScan >= (this.#opts.rescanMs ?? 30_000)) await this.#scan(now)
      for (const slot of this.#slots.values()) {
        if (!slot.running && slot.nextAt <= now) void this.#run(slot)
      }
    } catch (err) {
      this.#opts.log?.warn({ err: (err as Error).message }, 'federation refresh round failed')
    } finally {
      this.#ticking = false
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    if (this.#timer) clearInterval(this.#timer)
    this.#unwatch?.()
  }

  async #scan(now: number): Promise<void> {
    this.#dirty = false
    this.#lastScan = now
    const seen = new Set<string>()
    for (const td of await this.#opts.store.listTrustDomains()) {
      for (const f of await this.#opts.store.listFederations(td.name)) {
        const k = key(td.name, f.foreignTrustDomain)
        seen.add(k)
        const slot = this.#slots.get(k)
        const due = f.lastRefreshAt + this.#interval(f.refreshHintSeconds)
        if (!slot) {
          this.#slots.set(k, {
            trustDomain: td.name,
            foreign: f.foreignTrustDomain,
            nextAt: f.lastRefreshAt === 0 ? now : due,
            failures: 0,
            seenRefreshAt: f.lastRefreshAt,
            running: false,
          })
        } else if (f.lastRefreshAt > slot.seenRefreshAt) {
          // Another replica (or a manual refresh) fetched it meanwhile.
          slot.seenRefreshAt = f.lastRefreshAt
          slot.failures = 0
          slot.nextAt = Math.max(slot.nextAt, due)
        }
      }
    }
    for (const k of [...this.#slots.keys()]) if (!seen.has(k)) this.#slots.delete(k)
  }

  async #run(slot: Slot): Promise<void> {
    slot.running = true
    try {
      const result = await this.#opts.federation.refresh(slot.trustDomain, slot.foreign)
      const now = this.#opts.clock.now()
      if (result.ok) {
        slot.failures = 0
        slot.seenRefreshAt = result.record.lastRefreshAt
        slot.nextAt = now + this.#interval(result.record.refreshHintSeconds)
      } else {
        slot.failures++
        slot.nextAt = now + this.#backoff(slot.failures)
      }
    } catch (err) {
      // The federation (or its trust domain) was deleted meanwhile: forget it.
      this.#slots.delete(key(slot.trustDomain, slot.foreign))
      this.#opts.log?.info(
        { trustDomain: slot.trustDomain, foreignTrustDomain: slot.foreign, err: (err as Error).message },
        'federation no longer refreshed',
      )
    } finally {
      slot.running = false
    }
  }

  /** The hint, clamped, up to 10% early. */
  #interval(hintSeconds: number): number {
    return clampRefresh(hintSeconds) * 1000 * (0.9 + 0.1 * this.#random())
  }

  #backoff(failures: number): number {
    const base = MIN_REFRESH_SECONDS * 1000 * 2 ** Math.min(failures - 1, 16)
    return Math.min(base, MAX_BACKOFF_MS) * (0.9 + 0.1 * this.#random())
  }
}

function key(td: string, foreign: string): string {
  return `${td}\n${foreign}`
}
