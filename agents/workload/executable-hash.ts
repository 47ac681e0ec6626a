// The code-DNA of a process: sha256 of the executable it runs. Hashing is bounded so a workload cannot
// exhaust the agent: files over `maxBytes` are not hashed, at most `concurrency` files are hashed at once,
// and each file is hashed once per (device, inode, size, mtime, ctime). ctime is in the key as well as
// mtime because a file's owner can set mtime back after rewriting it, but nobody can set ctime.

import { createHash } from 'node:crypto'
import { type BigIntStats, fstatSync, read } from 'node:fs'
import { promisify } from 'node:util'
import type { Log } from './log.ts'

const readAsync = promisify(read)

export const DEFAULT_MAX_HASH_BYTES = 256 * 1024 * 1024
const CHUNK = 1024 * 1024

export interface ExecutableHasherOptions {
  /** Larger executables get no sha256 (and a log line). Default 256 MiB. */
  maxBytes?: number
  /** Cached hashes kept (least recently used dropped first). Default 1024. */
  maxEntries?: number
  /** Files hashed at the same time. Default 2. */
  concurrency?: number
  log?: Log
}

export type HashResult = { sha256: string } | { tooLarge: true; size: number }

type Entry = HashResult | Promise<HashResult>

export class ExecutableHasher {
  readonly maxBytes: number
  readonly #maxEntries: number
  readonly #concurrency: number
  readonly #log: Log | undefined
  readonly #cache = new Map<string, Entry>()
  #running = 0
  readonly #waiting: Array<() => void> = []
  /** Files actually read (cache misses), for tests and metrics. */
  hashed = 0

  constructor(opts: ExecutableHasherOptions = {}) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_HASH_BYTES
    this.#maxEntries = opts.maxEntries ?? 1024
    this.#concurrency = opts.concurrency ?? 2
    this.#log = opts.log
    if (!(this.maxBytes >= 0)) throw new TypeError('maxBytes must be a non-negative number')
  }

  /** Hashes the open file `fd` (which the caller keeps and closes). `what` names it in log lines. */
  async hash(fd: number, what: Record<string, unknown> = {}): Promise<HashResult> {
    const st = fstatSync(fd, { bigint: true })
    const key = cacheKey(st)
    const cached = this.#cache.get(key)
    if (cached) {
      this.#cache.delete(key)
      this.#cache.set(key, cached)
      return cached
    }
    if (st.size > BigInt(this.maxBytes)) {
      const result: HashResult = { tooLarge: true, size: Number(st.size) }
      this.#remember(key, result)
      this.#log?.warn(
        { ...what, size: Number(st.size), maxBytes: this.maxBytes },
        'executable is larger than the hashing limit: no unix:sha256 selector for it (raise maxHashBytes to hash it)',
      )
      return result
    }
    const pending = this.#hashFile(fd, st, key)
    this.#remember(key, pending)
    try {
      const result = await pending
      this.#remember(key, result)
      return result
    } catch (err) {
      this.#cache.delete(key)
      throw err
    }
  }

  #remember(key: string, entry: Entry): void {
    this.#cache.delete(key)
    this.#cache.set(key, entry)
    while (this.#cache.size > this.#maxEntries) this.#cache.delete(this.#cache.keys().next().value!)
  }

  async #hashFile(fd: number, st: BigIntStats, key: string): Promise<HashResult> {
    await this.#acquire()
    try {
      this.hashed++
      const size = Number(st.size)
      const hash = createHash('sha256')
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(size, 1)))
      let offset = 0
      while (offset < size) {
        const { bytesRead } = await readAsync(fd, buf, 0, Math.min(buf.length, size - offset), offset)
        if (bytesRead === 0) break
        hash.update(buf.subarray(0, bytesRead))
        offset += bytesRead
      }
      // A file that changed while being read has no single hash; refuse rather than cache a mix.
      if (offset !== size || cacheKey(fstatSync(fd, { bigint: true })) !== key)
        throw new Error('the executable changed while it was being hashed')
      return { sha256: hash.digest('hex') }
    } finally {
      this.#release()
    }
  }

  async #acquire(): Promise<void> {
    if (this.#running < this.#concurrency) {
      this.#running++
      return
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve))
  }

  #release(): void {
    const next = this.#waiting.shift()
    if (next) next()
    else this.#running--
  }
}

function cacheKey(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
}
