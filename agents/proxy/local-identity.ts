// Who is behind a TCP connection that a local app opened to one of the agent's listeners: the process
// (from the kernel's socket tables), its selectors (the same workload attestors as the Workload API,
// down to the code-DNA), and the X509-SVID those selectors earn. A process with no SVID is unidentified.
//
// The PID-reuse guard of the Workload API applies: the process is pinned with a pidfd and its start time
// before attestation, checked again after, and must still hold the socket.

import { readFileSync, readlinkSync } from 'node:fs'
import { pidfdOpen } from '../native/peer-credentials.ts'
import { attestCaller, Caller } from '../workload/caller.ts'
import { closeQuietly, type ProcessTable, ProcFs } from '../workload/process-table.ts'
import type { Selector, WorkloadAttestor, X509SvidMaterial } from '../workload-api/identity-source.ts'
import type { CertificateSource } from './certificates.ts'
import { type Endpoint, SocketOwners } from './socket-owner.ts'

export interface LocalWorkload {
  pid?: number
  uid?: number
  path?: string
  sha256?: string
  selectors: string[]
  /** The SVID the workload's selectors earn; undefined = unidentified. */
  svid?: X509SvidMaterial
  /** Why the process has no identity, when it has none. */
  why?: string
}

export interface LocalIdentityOptions {
  attestor: WorkloadAttestor
  certificates: CertificateSource
  processes?: ProcessTable
  owners?: SocketOwners
  procRoot?: string
}

function gidOf(procRoot: string, pid: number): number {
  const status = readFileSync(`${procRoot}/${pid}/status`, 'latin1')
  const m = /^Gid:\s+(\d+)/m.exec(status)
  if (!m) throw new Error(`no Gid in /proc/${pid}/status`)
  return Number(m[1])
}

export class LocalIdentity {
  readonly #attestor: WorkloadAttestor
  readonly #certificates: CertificateSource
  readonly #processes: ProcessTable
  readonly #owners: SocketOwners
  readonly #procRoot: string

  constructor(opts: LocalIdentityOptions) {
    this.#attestor = opts.attestor
    this.#certificates = opts.certificates
    this.#procRoot = opts.procRoot ?? '/proc'
    this.#processes = opts.processes ?? new ProcFs(this.#procRoot)
    this.#owners = opts.owners ?? new SocketOwners(this.#procRoot)
  }

  /** Identifies the process at `client` connected to one of `servers`. Never throws. */
  async identify(client: Endpoint, servers: Endpoint[]): Promise<LocalWorkload> {
    let owner: ReturnType<SocketOwners['find']>
    try {
      owner = this.#owners.find(client, servers)
    } catch (err) {
      return { selectors: [], why: `cannot read the socket tables: ${(err as Error).message}` }
    }
    if (!owner) return { selectors: [], why: 'no local process holds the connection (a remote client?)' }
    let caller: Caller
    try {
      const pidfd = pidfdOpen(owner.pid)
      let startTime: string
      try {
        startTime = this.#processes.startTime(owner.pid)
        // The pid held the socket before we pinned it: check it still does, so the pidfd is the owner's.
        if (readlinkSync(owner.fdPath) !== `socket:[${owner.inode}]`) throw new Error('socket moved')
      } catch (err) {
        closeQuietly(pidfd)
        throw err
      }
      caller = new Caller(
        { pid: owner.pid, uid: owner.uid, gid: gidOf(this.#procRoot, owner.pid) },
        startTime,
        pidfd,
      )
    } catch (err) {
      return {
        pid: owner.pid,
        selectors: [],
        why: `process ${owner.pid} went away: ${(err as Error).message}`,
      }
    }
    try {
      const selectors: Selector[] = await attestCaller(this.#attestor, caller, this.#processes)
      const flat = selectors.map((s) => `${s.type}:${s.value}`)
      const found: LocalWorkload = { pid: owner.pid, uid: owner.uid, selectors: flat }
      for (const s of flat) {
        if (s.startsWith('unix:path:')) found.path = s.slice('unix:path:'.length)
        else if (s.startsWith('unix:sha256:')) found.sha256 = s.slice('unix:sha256:'.length)
      }
      const svid = this.#certificates.forWorkload(selectors)
      if (svid) found.svid = svid
      else found.why = 'no registration entry matches the process'
      return found
    } catch (err) {
      return {
        pid: owner.pid,
        uid: owner.uid,
        selectors: [],
        why: `workload attestation failed: ${(err as Error).message}`,
      }
    } finally {
      caller.release()
    }
  }
}
