// Typed access to the native addon (peer-credentials.c): the kernel's word on who is at the other end
// of a Unix socket. Built with `node-gyp rebuild` in this folder (npm run build:native). Loaded on
// first use, so code that never identifies a peer (the CLI) runs without it.

import { createRequire } from 'node:module'

export interface PeerCredentials {
  pid: number
  uid: number
  gid: number
}

interface Addon {
  peerCred(fd: number): PeerCredentials
  peerPidfd(fd: number): number | null
  pidfdOpen(pid: number): number
  pidfdAlive(pidfd: number): boolean
  originalDst(fd: number): { address: string; port: number; family: 4 | 6 } | null
  socketOwner(
    family: 4 | 6,
    srcAddress: string,
    srcPort: number,
    dstAddress: string,
    dstPort: number,
  ): { inode: number; uid: number } | null
  findSocketFd(procRoot: string, pids: number[], target: string): { pid: number; fd: number } | null
}

const ADDON_PATH = './build/Release/sigil_native.node'
let addon: Addon | undefined

function load(): Addon {
  if (addon) return addon
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as Addon
  } catch (err) {
    throw new Error(
      'the native peer-credentials addon is not built: run `npm run build:native` ' +
        '(node-gyp; needs a C compiler and the Node headers)',
      { cause: err },
    )
  }
  return addon
}

/** The pid, uid and gid of the process that connected to this Unix socket (SO_PEERCRED). */
export function peerCred(fd: number): PeerCredentials {
  return load().peerCred(fd)
}

/** A pidfd the kernel took at connect(2) time (SO_PEERPIDFD, Linux 6.5+), or null on older kernels. */
export function peerPidfd(fd: number): number | null {
  return load().peerPidfd(fd)
}

/** A pidfd for a live process (pidfd_open, Linux 5.3+). */
export function pidfdOpen(pid: number): number {
  return load().pidfdOpen(pid)
}

/** Whether the process behind a pidfd has not exited yet. */
export function pidfdAlive(pidfd: number): boolean {
  return load().pidfdAlive(pidfd)
}

/**
 * Where a TCP connection redirected by iptables REDIRECT was first addressed (SO_ORIGINAL_DST), or null
 * when it was not redirected. `fd` is the accepted socket's descriptor.
 */
export function originalDst(fd: number): { address: string; port: number; family: 4 | 6 } | null {
  return load().originalDst(fd)
}

/**
 * The inode and uid of the TCP socket whose own end is src and whose peer is dst (NETLINK_SOCK_DIAG, one
 * exact lookup), or null when there is no such socket.
 */
export function socketOwner(
  family: 4 | 6,
  src: { address: string; port: number },
  dst: { address: string; port: number },
): { inode: number; uid: number } | null {
  return load().socketOwner(family, src.address, src.port, dst.address, dst.port)
}

/**
 * The first process of `pids` (in that order) holding a descriptor that links to `target`
 * (`socket:[INODE]`), scanning `procRoot/PID/fd` natively, highest descriptors first; null if none does.
 */
export function findSocketFd(
  procRoot: string,
  pids: number[],
  target: string,
): { pid: number; fd: number } | null {
  return load().findSocketFd(procRoot, pids, target)
}

/** Throws the build hint when the addon is missing; call at start-up to fail early. */
export function requireNativeAddon(): void {
  load()
}
