// Helpers for the agent tests: real files, real processes, real sockets.

import { type ChildProcess, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, copyFileSync, readFileSync, realpathSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/tools.ts'

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url))
export const workloadClientScript = fileURLToPath(new URL('./fixtures/workload-client.ts', import.meta.url))
export const nodeBinary = realpathSync(process.execPath)

export function sha256File(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex')
}

/** A temp dir any uid may enter (sockets in it must be reachable by workloads of every uid). */
export function openTempDir(t: { teardown(fn: () => void): void }, prefix = 'sigil-agent-'): string {
  const dir = tempDir(t, prefix)
  chmodSync(dir, 0o755)
  return dir
}

/** Copies `src` to `dst` (mode 0755), changing one byte inside the first occurrence of `marker`. */
export function copyWithOneByteChanged(src: string, dst: string, marker: string): void {
  const bytes = readFileSync(src)
  const at = bytes.indexOf(Buffer.from(marker, 'latin1'))
  if (at < 0) throw new Error(`${marker} not found in ${src}`)
  bytes[at] = bytes[at]! ^ 0x20
  writeFileSync(dst, bytes, { mode: 0o755 })
}

export function copyExecutable(src: string, dst: string): void {
  copyFileSync(src, dst)
  chmodSync(dst, 0o755)
}

export async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

export interface RunningClient {
  child: ChildProcess
  /** JSON lines the client printed so far. */
  lines: any[]
  stderr(): string
  exited: Promise<number | null>
}

/** Runs the fixture Workload API client (fixtures/workload-client.ts) under `node` (any copy of it). */
export function startWorkloadClient(
  args: string[],
  opts: { node?: string; uid?: number; gid?: number } = {},
): RunningClient {
  const child = spawn(opts.node ?? nodeBinary, ['--import', 'tsx', workloadClientScript, ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.uid === undefined ? {} : { uid: opts.uid }),
    ...(opts.gid === undefined ? {} : { gid: opts.gid }),
  })
  const lines: any[] = []
  let out = ''
  let err = ''
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString('utf8')
    let nl = out.indexOf('\n')
    while (nl >= 0) {
      const line = out.slice(0, nl)
      out = out.slice(nl + 1)
      if (line.trim()) lines.push(JSON.parse(line))
      nl = out.indexOf('\n')
    }
  })
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString('utf8')
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, lines, stderr: () => err, exited }
}

/** Runs the fixture client to completion and returns its one JSON result. */
export async function runWorkloadClient(
  args: string[],
  opts: { node?: string; uid?: number; gid?: number } = {},
): Promise<any> {
  const c = startWorkloadClient(args, opts)
  const code = await c.exited
  if (code !== 0 || c.lines.length !== 1)
    throw new Error(`workload client exited ${code}: ${c.stderr()} ${JSON.stringify(c.lines)}`)
  return c.lines[0]
}
