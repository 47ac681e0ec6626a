// Reads the head of an HTTP/1.1 CONNECT request from a client socket, bounded in size and time, so a
// garbage, half-open or slow client costs one timer and a few kilobytes and never stalls others.

import type { Socket } from 'node:net'

export interface ConnectTarget {
  host: string
  port: number
  /** Bytes the client sent after the request head (the start of its tunnelled stream). */
  rest: Buffer
}

export class ConnectRequestError extends Error {
  override name = 'ConnectRequestError'
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

const MAX_HEAD = 8192
const HOST = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252}))):(\d{1,5})$/

export function parseConnectHead(head: string): { host: string; port: number } {
  const line = head.slice(0, head.indexOf('\r\n'))
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(line)
  if (!m) throw new ConnectRequestError(400, 'not an HTTP/1.1 request line')
  if (m[1] !== 'CONNECT')
    throw new ConnectRequestError(405, `this is a CONNECT proxy; ${m[1]} is not supported`)
  const t = HOST.exec(m[2]!)
  if (!t) throw new ConnectRequestError(400, `CONNECT target ${JSON.stringify(m[2])} is not HOST:PORT`)
  const port = Number(t[3])
  if (port < 1 || port > 65535) throw new ConnectRequestError(400, `port ${port} is out of range`)
  return { host: (t[1] ?? t[2]!).toLowerCase().replace(/\.$/, ''), port }
}

export function readConnectRequest(socket: Socket, timeoutMs = 10_000): Promise<ConnectTarget> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0)
    const cleanup = () => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('error', onEnd)
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new ConnectRequestError(408, `no complete CONNECT request within ${timeoutMs} ms`))
    }, timeoutMs)
    const onEnd = () => {
      cleanup()
      reject(new ConnectRequestError(400, 'the client closed before sending a complete request'))
    }
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      const end = buffered.indexOf('\r\n\r\n')
      if (end < 0) {
        if (buffered.length > MAX_HEAD) {
          cleanup()
          reject(new ConnectRequestError(431, `request head over ${MAX_HEAD} bytes`))
        }
        return
      }
      cleanup()
      socket.pause()
      try {
        const target = parseConnectHead(buffered.subarray(0, end + 2).toString('latin1'))
        resolve({ ...target, rest: buffered.subarray(end + 4) })
      } catch (err) {
        reject(err)
      }
    }
    socket.on('data', onData)
    socket.once('end', onEnd)
    socket.once('error', onEnd)
  })
}
