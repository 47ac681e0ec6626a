// The caller of the Workload API as the kernel names it, and the PID-reuse guard around its attestation.
//
// SO_PEERCRED gives the pid of the process that called connect(2). By the time we read /proc/<pid> that
// process may have exited and its PID been given to another, which would then be attested in its place.
// So a caller holds a pidfd on the exact process (SO_PEERPIDFD, taken by the kernel at connect time, or
// pidfd_open at accept time on kernels before 6.5) and the process's start time, and attestation is
// accepted only if, before and after it, the pidfd's process is still alive and /proc/<pid> still shows
// the same start time: then every /proc read in between was of the caller.

import { peerCred, peerPidfd, pidfdAlive, pidfdOpen } from '../native/peer-credentials.ts'
import type { Selector, WorkloadAttestor } from '../workload-api/identity-source.ts'
import { closeQuietly, type ProcessTable } from './process-table.ts'

export class CallerGoneError extends Error {
  override name = 'CallerGoneError'
  readonly code = 'CALLER_GONE'
}

export class Caller {
  readonly pid: number
  readonly uid: number
  readonly gid: number
  readonly startTime: string
  #pidfd: number | null
  #released = false

  constructor(cred: { pid: number; uid: number; gid: number }, startTime: string, pidfd: number | null) {
    this.pid = cred.pid
    this.uid = cred.uid
    this.gid = cred.gid
    this.startTime = startTime
    this.#pidfd = pidfd
  }

  get pidfd(): number | null {
    return this.#pidfd
  }

  /** Throws CallerGoneError unless the process that connected is still alive under its PID. */
  verify(processes: ProcessTable): void {
    if (this.#released) throw new CallerGoneError(`the connection of process ${this.pid} is closed`)
    if (this.#pidfd !== null && !pidfdAlive(this.#pidfd))
      throw new CallerGoneError(`process ${this.pid} has exited`)
    let now: string
    try {
      now = processes.startTime(this.pid)
    } catch {
      throw new CallerGoneError(`process ${this.pid} has exited`)
    }
    if (now !== this.startTime)
      throw new CallerGoneError(`process ${this.pid} is not the process that connected (its PID was reused)`)
  }

  /** Closes the pidfd. A released caller never verifies again (its fd number may belong to another file). */
  release(): void {
    this.#released = true
    if (this.#pidfd !== null) closeQuietly(this.#pidfd)
    this.#pidfd = null
  }
}

/** The process at the other end of a connected Unix socket. */
export function identifyCaller(socketFd: number, processes: ProcessTable): Caller {
  const cred = peerCred(socketFd)
  let pidfd = peerPidfd(socketFd)
  if (pidfd === null) {
    try {
      pidfd = pidfdOpen(cred.pid)
    } catch (err) {
      if ((err as { code?: string }).code === 'ESRCH')
        throw new CallerGoneError(`process ${cred.pid} has exited`)
      pidfd = null
    }
  }
  let startTime: string
  try {
    startTime = processes.startTime(cred.pid)
  } catch {
    if (pidfd !== null) closeQuietly(pidfd)
    throw new CallerGoneError(`process ${cred.pid} has exited`)
  }
  const caller = new Caller(cred, startTime, pidfd)
  try {
    caller.verify(processes)
  } catch (err) {
    caller.release()
    throw err
  }
  return caller
}

/** Attests the caller; refuses (CallerGoneError) if it was not the same live process throughout. */
export async function attestCaller(
  attestor: WorkloadAttestor,
  caller: Caller,
  processes: ProcessTable,
): Promise<Selector[]> {
  caller.verify(processes)
  let selectors: Selector[]
  try {
    selectors = await attestor.attest({ pid: caller.pid, uid: caller.uid, gid: caller.gid })
  } catch (err) {
    // An attestor that failed because the process went away reports the real reason.
    caller.verify(processes)
    throw err
  }
  caller.verify(processes)
  return selectors
}
