import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

/** The p-th percentile of an ascending array. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

/** Resident memory of a process, MiB. */
export function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
  return Number(kb) / 1024
}

/**
 * A process's resident memory split the way the kernel counts it: `private` is its anonymous memory
 * (heaps, buffers: what it costs the host), `file` the pages of the node binary and libraries it maps,
 * which every Node.js process on the host shares.
 */
export function memoryMiB(pid: number): { rss: number; private: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024
  return { rss: kb('VmRSS'), private: kb('RssAnon'), file: kb('RssFile') }
}

/** "R MiB (private P, shared F)" */
export function formatMemory(m: { rss: number; private: number; file: number }): string {
  return `${m.rss.toFixed(1)} MiB (private ${m.private.toFixed(1)}, shared binary/libraries ${m.file.toFixed(1)})`
}

let clockTicks: number | undefined

/** The unit of /proc's CPU times, per second. */
function ticks(): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  return clockTicks
}

/** CPU time (user + system) a process has used so far, seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // After "pid (comm) ": field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / ticks()
}

/** CPU time the whole machine has spent busy (every CPU; all but idle and iowait), seconds. */
export function machineBusySeconds(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0)
  return (total - cpu[3]! - cpu[4]!) / ticks()
}
