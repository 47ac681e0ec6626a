// Real processes and sockets for the proxy tests: a C client whose executable is the code-DNA under
// test (and a copy with one byte changed), an echo server, free ports, and a relay that records every
// byte it forwards (the "capture" of the wire between two agents).

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'

const here = path.resolve(import.meta.dirname, '../proxy')

export const GCC_MISSING =
  'gcc not found: the proxy tests build a small C client (test/proxy/client.c). Install it with ' +
  '`apt-get install -y build-essential`, or run `npm run setup`.'

/** Builds the test client into dir; returns its path. */
export function buildClient(dir: string): string {
  const out = path.join(dir, 'sigil-test-client')
  try {
    execFileSync('gcc', ['-O1', '-o', out, path.join(here, 'client.c')], { stdio: 'pipe' })
  } catch (err) {
    throw new Error(`${GCC_MISSING}\n${(err as Error).message}`)
  }
  return out
}

/** A copy of the client with one byte of its marker string changed: same code, other code-DNA. */
export function patchedCopy(bin: string, name: string): string {
  const bytes = readFileSync(bin)
  const marker = Buffer.from('SIGIL-CODE-DNA-MARKER-0')
  const at = bytes.indexOf(marker)
  if (at < 0) throw new Error('marker not found in the test client')
  const copy = Buffer.from(bytes)
  copy[at + marker.length - 1] = '1'.charCodeAt(0)
  const out = path.join(path.dirname(bin), name)
  writeFileSync(out, copy)
  chmodSync(out, 0o755)
  return out
}

export function sha256File(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex')
}

export async function freePort(): Promise<number> {
  const s = net.createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as net.AddressInfo).port
  await new Promise((r) => s.close(r))
  return port
}

/** An echo server on loopback that answers each chunk with `prefix` + the chunk. */
export async function echoServer(
  t: { teardown(fn: () => unknown): void },
  prefix = '',
): Promise<{ port: number; connections: number }> {
  const state = { port: 0, connections: 0 }
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    state.connections++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.on('data', (d) => socket.write(prefix ? Buffer.concat([Buffer.from(prefix), d]) : d))
    socket.on('end', () => socket.end())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  state.port = (server.address() as net.AddressInfo).port
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return state
}

export interface ClientRun {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the client once: sends `input`, half-closes, collects what came back. */
export async function runClient(
  bin: string,
  port: number,
  input: string,
  timeoutMs = 15_000,
  host = '127.0.0.1',
): Promise<ClientRun> {
  const child = spawn(bin, [host, String(port)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: timeoutMs,
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  child.stdin.on('error', () => {})
  child.stdin.end(input)
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, stdout, stderr }
}

/** A long-lived client: write lines, wait for what comes back. */
export function interactiveClient(
  bin: string,
  port: number,
): {
  child: ChildProcess
  send(text: string): void
  waitFor(text: string, timeoutMs?: number): Promise<string>
  output(): string
  close(): void
} {
  const child = spawn(bin, ['127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stdin!.on('error', () => {})
  return {
    child,
    send: (text) => child.stdin!.write(text),
    waitFor: (text, timeoutMs = 10_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          clearInterval(poll)
          reject(new Error(`did not receive ${JSON.stringify(text)}; got ${JSON.stringify(out)}`))
        }, timeoutMs)
        const poll = setInterval(() => {
          if (out.includes(text)) {
            clearTimeout(timer)
            clearInterval(poll)
            resolve(out)
          }
        }, 10)
      }),
    output: () => out,
    close: () => {
      child.stdin!.end()
      child.kill()
    },
  }
}

/** A TCP relay that forwards to `target` and records every byte in both directions. */
export async function recordingRelay(
  t: { teardown(fn: () => unknown): void },
  target: number,
): Promise<{ port: number; captured(): Buffer }> {
  const chunks: Buffer[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((a) => {
    const b = net.connect(target, '127.0.0.1')
    for (const s of [a, b]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {
        a.destroy()
        b.destroy()
      })
    }
    a.on('data', (d) => {
      chunks.push(Buffer.from(d))
      b.write(d)
    })
    b.on('data', (d) => {
      chunks.push(Buffer.from(d))
      a.write(d)
    })
    a.on('end', () => b.end())
    b.on('end', () => a.end())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return { port: (server.address() as net.AddressInfo).port, captured: () => Buffer.concat(chunks) }
}
