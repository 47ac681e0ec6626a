// The process-lookup seam: what workload attestation reads about a process, from a /proc root that tests
// (and agents in a container with the host's /proc mounted elsewhere) can move. procfs lives in memory,
// so the small reads here are synchronous: one syscall each instead of four thread-pool round trips.

import { closeSync, openSync, readFileSync, readlinkSync, type Stats, statSync } from 'node:fs'
import path from 'node:path'

export interface ProcessTable {
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot): with the pid, names one process for good. */
  startTime(pid: number): string
  /** The link target of /proc/<pid>/exe (the kernel appends " (deleted)" once the file is unlinked). */
  exeLink(pid: number): string
  /** An fd on the exact file the process runs (/proc/<pid>/exe opened), even if its path was replaced. */
  openExe(pid: number): number
  /** stat(2) through /proc/<pid>/exe: the executable the process runs right now. */
  statExe(pid: number): Stats
  /** /proc/<pid>/cgroup. */
  cgroup(pid: number): string
}

export class ProcFs implements ProcessTable {
  constructor(readonly root = '/proc') {}

  #file(pid: number, name: string): string {
    if (!Number.isInteger(pid) || pid <= 0) throw new TypeError(`pid must be a positive integer, got ${pid}`)
    return path.join(this.root, String(pid), name)
  }

  startTime(pid: number): string {
    return parseStartTime(readFileSync(this.#file(pid, 'stat'), 'latin1'))
  }

  exeLink(pid: number): string {
    return readlinkSync(this.#file(pid, 'exe'))
  }

  openExe(pid: number): number {
    return openSync(this.#file(pid, 'exe'), 'r')
  }

  statExe(pid: number): Stats {
    return statSync(this.#file(pid, 'exe'))
  }

  cgroup(pid: number): string {
    return readFileSync(this.#file(pid, 'cgroup'), 'utf8')
  }
}

/** Field 22 of a /proc/<pid>/stat line. The command name (field 2) may hold spaces and parentheses. */
export function parseStartTime(stat: string): string {
  const end = stat.lastIndexOf(')')
  // Fields after the name start at field 3 (state); starttime is field 22.
  const fields = end < 0 ? [] : stat.slice(end + 2).split(' ')
  const value = fields[22 - 3]
  if (!value || !/^\d+$/.test(value)) throw new Error('malformed /proc/<pid>/stat: no start time')
  return value
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd)
  } catch {}
}
