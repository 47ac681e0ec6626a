// Runs a real redis-server for a test: loopback only, an ephemeral port, a fresh data dir, AOF on.
import { type ChildProcess, spawn } from 'node:child_process'
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'

export interface RedisServer {
  url: string
  port: number
  dir: string
  /** SIGKILL, no shutdown: what is not yet in the AOF is lost. Returns at once. */
  kill9(): void
  /** Starts the server again on the same port and dir (replaying the AOF), killing it first if running. */
  restart(): Promise<void>
  stop(): Promise<void>
}

const NOT_FOUND = "redis-server not found: run `npm run setup` (installs Debian's redis-server package)"
const START_TIMEOUT_MS = 15_000

function findOnPath(binary: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue
    const candidate = path.join(dir, binary)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** Resolves once the server answers PING with PONG (and has loaded its data). */
function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    let reply = ''
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1')
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'))
    })
  })
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

export async function startRedis(t: Test): Promise<RedisServer> {
  const binary = findOnPath('redis-server')
  if (!binary) {
    t.fail(NOT_FOUND)
    throw new Error(NOT_FOUND)
  }
  const port = await freePort()
  const dir = mkdtempSync(path.join(tmpdir(), 'sigil-redis-'))
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    '--save',
    '',
    '--daemonize',
    'no',
    '--logfile',
    '',
  ]
  let child: ChildProcess | undefined
  let log = ''

  const launch = async () => {
    log = ''
    const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    proc.stdout?.on('data', (chunk) => {
      log = (log + chunk.toString()).slice(-8000)
    })
    proc.stderr?.on('data', (chunk) => {
      log = (log + chunk.toString()).slice(-8000)
    })
    const deadline = Date.now() + START_TIMEOUT_MS
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) break
      if (await pingOnce(port)) return
      await new Promise((r) => setTimeout(r, 50))
    }
    proc.kill('SIGKILL')
    throw new Error(`redis-server did not start on port ${port}:\n${log}`)
  }

  const kill9 = () => {
    child?.kill('SIGKILL')
  }

  const stop = async () => {
    const proc = child
    if (!proc) return
    child = undefined
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
      await exited(proc)
      clearTimeout(timer)
    }
  }

  const restart = async () => {
    const proc = child
    if (proc) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
      await exited(proc)
    }
    await launch()
  }

  t.teardown(async () => {
    await stop()
    rmSync(dir, { recursive: true, force: true })
  })
  await launch()
  return { url: `redis://127.0.0.1:${port}/0`, port, dir, kill9, restart, stop }
}
