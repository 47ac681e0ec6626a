// Which local process opened a TCP connection, from the kernel's view: the connection's client end is a
// line of /proc/net/tcp (or tcp6) whose local address is the peer address our listener saw; that line
// names the socket's inode, and the process holding `socket:[inode]` among its file descriptors is the
// caller. Nothing the caller sends is consulted.
//
// The socket is found with one NETLINK_SOCK_DIAG lookup of its exact 4-tuple (microseconds, whatever
// the size of the TCP table); /proc/net/tcp{,6} is read only where that is unavailable, because reading
// it walks every bucket of the kernel's hash table (milliseconds, on the event loop). Scanning processes'
// descriptors is the other cost, so processes that opened connections recently are looked at first (an
// app that makes one connection usually makes many), and the scan runs in the native addon (a third of
// the cost of fs.readdirSync plus a readlinkSync per descriptor), with the same scan in JS as fallback.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { isIPv4 } from 'node:net'
import path from 'node:path'
import { findSocketFd, socketOwner } from '../native/peer-credentials.ts'

export interface SocketOwner {
  pid: number
  uid: number
  inode: string
  /** /proc/<pid>/fd/<n>: re-read it to check the process still holds the socket. */
  fdPath: string
}

export interface Endpoint {
  address: string
  port: number
}

const RECENT_MAX = 64

/** An IPv4 address as /proc/net/tcp prints it: the 32-bit word in host (little-endian) order. */
function hex4(address: string): string {
  const b = address.split('.').map(Number)
  return [b[3], b[2], b[1], b[0]]
    .map((x) => x!.toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase()
}

/** An IPv6 address as /proc/net/tcp6 prints it: four 32-bit words, each in host order. */
function hex6(address: string): string {
  let text = address
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4) {
    const b = v4[1]!.split('.').map(Number)
    text = `${text.slice(0, v4.index)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`
  }
  const [head = '', tail = ''] = text.split('::')
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = text.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h
  const bytes = groups.flatMap((g) => {
    const n = Number.parseInt(g, 16)
    return [n >> 8, n & 0xff]
  })
  let out = ''
  for (let w = 0; w < 4; w++) {
    const word = bytes.slice(w * 4, w * 4 + 4).reverse()
    out += word.map((x) => x.toString(16).padStart(2, '0')).join('')
  }
  return out.toUpperCase()
}

function keyOf(e: Endpoint, family: 4 | 6): string {
  const port = e.port.toString(16).padStart(4, '0').toUpperCase()
  return `${family === 4 ? hex4(e.address) : hex6(e.address)}:${port}`
}

function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address
}

export class SocketOwners {
  readonly #proc: string
  readonly #recent: number[] = []
  #diag: boolean | undefined
  #nativeScan: boolean

  /**
   * `netlink: false` reads /proc/net/tcp{,6} only, and `nativeScan: false` scans descriptors in JS only
   * (the fallbacks, tested on their own).
   */
  constructor(procRoot = '/proc', opts: { netlink?: boolean; nativeScan?: boolean } = {}) {
    this.#proc = procRoot
    if (opts.netlink === false) this.#diag = false
    this.#nativeScan = opts.nativeScan !== false
  }

  /**
   * The process whose socket has local address `client` and remote address one of `servers` (the
   * listener's address, or the original destination of a redirected connection). Undefined when no
   * local process holds it (the connection came from another host).
   */
  find(client: Endpoint, servers: Endpoint[]): SocketOwner | undefined {
    const hit = this.#lookupInode(client, servers)
    if (!hit) return undefined
    const target = `socket:[${hit.inode}]`
    const found = this.#scan(target, this.#recent) ?? this.#scan(target, this.#allPids())
    if (!found) return undefined
    this.#remember(found.pid)
    return { ...found, uid: hit.uid, inode: hit.inode }
  }

  #lookupInode(client: Endpoint, servers: Endpoint[]): { inode: string; uid: number } | undefined {
    if (this.#proc === '/proc' && this.#diag !== false) {
      try {
        return this.#diagLookup(client, servers)
      } catch {
        this.#diag = false // an agent without the netlink lookup reads /proc/net/tcp from now on
      }
    }
    return this.#procLookup(client, servers)
  }

  /** NETLINK_SOCK_DIAG: the client's socket is (local: client, peer: server), in either family. */
  #diagLookup(client: Endpoint, servers: Endpoint[]): { inode: string; uid: number } | undefined {
    const address = unmapped(client.address)
    for (const server of servers) {
      const peer = unmapped(server.address)
      const attempts: Array<[4 | 6, string, string]> = []
      if (isIPv4(address) && isIPv4(peer))
        attempts.push([4, address, peer], [6, `::ffff:${address}`, `::ffff:${peer}`])
      else attempts.push([6, client.address, server.address])
      for (const [family, src, dst] of attempts) {
        const hit = socketOwner(
          family,
          { address: src, port: client.port },
          { address: dst, port: server.port },
        )
        if (hit && hit.inode !== 0) return { inode: String(hit.inode), uid: hit.uid }
      }
    }
    return undefined
  }

  #procLookup(client: Endpoint, servers: Endpoint[]): { inode: string; uid: number } | undefined {
    const address = unmapped(client.address)
    const tables: Array<[string, 4 | 6]> = isIPv4(address)
      ? [
          ['tcp', 4],
          ['tcp6', 6],
        ]
      : [['tcp6', 6]]
    for (const [table, family] of tables) {
      const local =
        family === 4 ? keyOf({ address, port: client.port }, 4) : keyOf({ ...client, address: address }, 6)
      const remotes = new Set(
        servers.flatMap((s) => {
          const a = unmapped(s.address)
          if (family === 4) return isIPv4(a) ? [keyOf({ address: a, port: s.port }, 4)] : []
          return [keyOf({ address: a, port: s.port }, 6)]
        }),
      )
      let text: string
      try {
        text = readFileSync(path.join(this.#proc, 'net', table), 'latin1')
      } catch {
        continue
      }
      // Each line: sl local rem st queues timer retrnsmt uid timeout inode ...
      let at = text.indexOf(` ${local} `)
      while (at >= 0) {
        const start = text.lastIndexOf('\n', at) + 1
        const end = text.indexOf('\n', at)
        const fields = text
          .slice(start, end < 0 ? undefined : end)
          .trim()
          .split(/\s+/)
        if (fields[1] === local && (remotes.size === 0 || remotes.has(fields[2]!)) && fields[9] !== '0') {
          return { inode: fields[9]!, uid: Number(fields[7]) }
        }
        at = text.indexOf(` ${local} `, at + 1)
      }
    }
    return undefined
  }

  #scan(target: string, pids: number[]): { pid: number; fdPath: string } | undefined {
    if (this.#nativeScan) {
      try {
        const hit = findSocketFd(this.#proc, pids, target)
        return hit
          ? { pid: hit.pid, fdPath: path.join(this.#proc, String(hit.pid), 'fd', String(hit.fd)) }
          : undefined
      } catch {
        this.#nativeScan = false // an addon without the scan: the same scan in JS from now on
      }
    }
    for (const pid of pids) {
      const dir = path.join(this.#proc, String(pid), 'fd')
      let fds: string[]
      try {
        fds = readdirSync(dir)
      } catch {
        continue
      }
      // Newest descriptors are usually the highest numbers.
      for (let i = fds.length - 1; i >= 0; i--) {
        const fdPath = path.join(dir, fds[i]!)
        try {
          if (readlinkSync(fdPath) === target) return { pid, fdPath }
        } catch {}
      }
    }
    return undefined
  }

  #allPids(): number[] {
    const self = process.pid
    return readdirSync(this.#proc)
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .filter((pid) => pid !== self && !this.#recent.includes(pid))
      .sort((a, b) => b - a)
  }

  #remember(pid: number): void {
    const i = this.#recent.indexOf(pid)
    if (i >= 0) this.#recent.splice(i, 1)
    this.#recent.unshift(pid)
    if (this.#recent.length > RECENT_MAX) this.#recent.pop()
  }
}
