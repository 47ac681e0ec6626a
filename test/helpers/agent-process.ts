// Starts the real agent (`sigil agent run`) as a child process with a join token.

import { type ChildProcess, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { sigilBin } from './server-process.ts'

export interface AgentProcess {
  proc: ChildProcess
  socket: string
  /** Everything the agent logged so far. */
  log(): string
  stop(): void
}

export function startAgentProcess(opts: {
  serverUrl: string
  caPem: string
  trustDomain: string
  joinToken: string
  dir: string
  socket: string
  env?: Record<string, string>
  /** More `sigil agent run` arguments (e.g. --proxy-config FILE). */
  args?: string[]
}): AgentProcess {
  const caFile = path.join(opts.dir, 'server-ca.pem')
  writeFileSync(caFile, opts.caPem)
  const args = [sigilBin, '--server', opts.serverUrl, 'agent', 'run', '--trust-domain', opts.trustDomain]
  args.push('--trust-bundle', caFile, '--join-token', opts.joinToken, '--socket', opts.socket)
  args.push(...(opts.args ?? []))
  const proc = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  })
  let log = ''
  const append = (d: Buffer) => {
    log += d.toString()
  }
  proc.stdout!.on('data', append)
  proc.stderr!.on('data', append)
  return { proc, socket: opts.socket, log: () => log, stop: () => proc.kill('SIGTERM') }
}
