// Starts the real trust service (`sigil server run`) as a child process on an ephemeral loopback port.

import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { ApiClient } from '../../services/cli/client.ts'

const root = path.resolve(import.meta.dirname, '../..')
export const sigilBin = path.join(root, 'bin/sigil.js')

export interface ServerProcess {
  url: string
  dataDir: string
  proc: ChildProcess
  caPem: string
  /** The bootstrap admin token (from the data dir; for a replica, from `adminTokenFrom`). */
  token: string
  client(token?: string): ApiClient
  logs(): string
  kill9(): void
  stop(): Promise<void>
}

export interface ServerProcessOptions {
  dataDir: string
  store?: string
  env?: Record<string, string>
  /** Read the admin token from this data dir instead (replicas share the first server's token). */
  adminTokenFrom?: string
  port?: number
  /** More `sigil server run` arguments (e.g. --config FILE). */
  args?: string[]
}

export async function startServerProcess(
  t: { teardown(fn: () => unknown): void },
  opts: ServerProcessOptions,
): Promise<ServerProcess> {
  const args = [
    sigilBin,
    'server',
    'run',
    '--data-dir',
    opts.dataDir,
    '--listen',
    `127.0.0.1:${opts.port ?? 0}`,
  ]
  if (opts.store) args.push('--store', opts.store)
  args.push(...(opts.args ?? []))
  const proc = spawn(process.execPath, args, {
    env: { ...process.env, SIGIL_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  proc.stdout!.on('data', (c: Buffer) => {
    output += c.toString()
  })
  proc.stderr!.on('data', (c: Buffer) => {
    output += c.toString()
  })
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within 30s:\n${output}`)), 30_000)
    const check = () => {
      const match = /"url":"(https:\/\/[^"]+)".*Sigil trust service listening/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve(match[1]!)
      }
    }
    proc.stdout!.on('data', check)
    proc.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`server exited with ${code} before listening:\n${output}`))
    })
  })
  let exited = false
  proc.once('exit', () => {
    exited = true
  })
  const caPem = readFileSync(path.join(opts.dataDir, 'server-ca.pem'), 'utf8')
  const token = readFileSync(path.join(opts.adminTokenFrom ?? opts.dataDir, 'admin.token'), 'utf8').trim()
  const stop = async () => {
    if (exited) return
    const done = new Promise((r) => proc.once('exit', r))
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
    await done
    clearTimeout(timer)
  }
  t.teardown(stop)
  return {
    url,
    dataDir: opts.dataDir,
    proc,
    caPem,
    token,
    client: (tok = token) => new ApiClient({ server: new URL(url), token: tok, ca: caPem }),
    logs: () => output,
    kill9: () => {
      proc.kill('SIGKILL')
    },
    stop,
  }
}
