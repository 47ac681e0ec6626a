// Builds and runs the go-spiffe workload (main.go) for the interop tests.

import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(new URL('.', import.meta.url))

export function goBinary(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v go'], { encoding: 'utf8' })
  return found.status === 0 ? found.stdout.trim() : undefined
}

export const GO_MISSING =
  'go not found on PATH: this test builds a go-spiffe workload from test/interop. Install Go 1.24+ ' +
  '(https://go.dev/doc/install), then run `cd test/interop && go mod download`, or `npm run setup`.'

/** Builds the workload with an embedded build name (two names = two binaries with different sha256). */
export function buildWorkload(go: string, dir: string, name: string): string {
  const out = path.join(dir, `interop-${name}`)
  execFileSync(
    go,
    ['build', '-mod=readonly', '-buildvcs=false', '-o', out, '-ldflags', `-X main.build=${name}`, '.'],
    {
      cwd: here,
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 170_000,
    },
  )
  return out
}

/** Runs a built binary to completion (asynchronously: the Workload API may be in this process). */
export async function runWorkload(bin: string, args: string[]): Promise<any[]> {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 90_000 })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString('utf8')
  })
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString('utf8')
  })
  const [code] = (await once(child, 'close')) as [number | null]
  if (code !== 0) throw new Error(`${path.basename(bin)} ${args[0]} exited ${code}: ${stderr}`)
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l))
}
