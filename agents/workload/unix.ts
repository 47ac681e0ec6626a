// The unix workload attestor: uid, gid, user, group from the socket's peer credentials, and path and
// sha256 of the executable the process runs, read through /proc/<pid>/exe so a binary replaced on disk
// after the process started is never confused with the one it runs.

import { fstatSync } from 'node:fs'
import type { Selector, WorkloadAttestor } from '../workload-api/identity-source.ts'
import { type Accounts, EtcAccounts } from './accounts.ts'
import { ExecutableHasher } from './executable-hash.ts'
import type { Log } from './log.ts'
import { closeQuietly, type ProcessTable, ProcFs } from './process-table.ts'

export interface UnixAttestorOptions {
  processes?: ProcessTable
  accounts?: Accounts
  /** Shared hasher (its cache and limits); default: a new one with maxHashBytes. */
  hasher?: ExecutableHasher
  /** Executables larger than this get no unix:sha256 selector. Default 256 MiB. */
  maxHashBytes?: number
  log?: Log
}

const DELETED = ' (deleted)'

export class UnixAttestor implements WorkloadAttestor {
  readonly #processes: ProcessTable
  readonly #accounts: Accounts
  readonly #hasher: ExecutableHasher

  constructor(opts: UnixAttestorOptions = {}) {
    this.#processes = opts.processes ?? new ProcFs()
    this.#accounts = opts.accounts ?? new EtcAccounts()
    const hasherOpts: ConstructorParameters<typeof ExecutableHasher>[0] = {}
    if (opts.maxHashBytes !== undefined) hasherOpts.maxBytes = opts.maxHashBytes
    if (opts.log) hasherOpts.log = opts.log
    this.#hasher = opts.hasher ?? new ExecutableHasher(hasherOpts)
  }

  async attest(caller: { pid: number; uid: number; gid: number }): Promise<Selector[]> {
    const { pid, uid, gid } = caller
    const selectors: Selector[] = [
      { type: 'unix', value: `uid:${uid}` },
      { type: 'unix', value: `gid:${gid}` },
    ]
    const user = this.#accounts.userName(uid)
    if (user !== undefined) selectors.push({ type: 'unix', value: `user:${user}` })
    const group = this.#accounts.groupName(gid)
    if (group !== undefined) selectors.push({ type: 'unix', value: `group:${group}` })

    // The fd pins the executable; the path and the hash must both describe that one file, so a
    // process that execs between the reads is caught by comparing the fd with what /proc shows after.
    const fd = this.#processes.openExe(pid)
    try {
      let exePath = this.#processes.exeLink(pid)
      const pinned = fstatSync(fd)
      const now = this.#processes.statExe(pid)
      if (pinned.dev !== now.dev || pinned.ino !== now.ino)
        throw new Error(`process ${pid} replaced its executable (exec) during attestation`)
      // An executable replaced or removed after start: the path still names where it was started
      // from, and sha256 below says what it actually runs.
      if (pinned.nlink === 0 && exePath.endsWith(DELETED)) exePath = exePath.slice(0, -DELETED.length)
      selectors.push({ type: 'unix', value: `path:${exePath}` })
      const hashed = await this.#hasher.hash(fd, { pid, path: exePath })
      if ('sha256' in hashed) selectors.push({ type: 'unix', value: `sha256:${hashed.sha256}` })
    } finally {
      closeQuietly(fd)
    }
    return selectors
  }
}
