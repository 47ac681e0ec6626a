// The Terraform provider (terraform/provider, Go): go vet, gofmt, and its unit and acceptance tests.
// The acceptance tests (TF_ACC=1) start a real `sigil server run` and drive the real terraform binary.

import { spawn, spawnSync } from 'node:child_process'
import path from 'node:path'
import t from 'tap'

const providerDir = path.resolve(import.meta.dirname, '../../terraform/provider')

// Compiling terraform-plugin-testing the first time and running terraform for every step takes minutes.
const GO_TEST_TIMEOUT_MINUTES = 25
t.setTimeout((GO_TEST_TIMEOUT_MINUTES + 5) * 60_000)

function missingTool(name: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' })
  return found.status === 0
    ? undefined
    : `${name} not found on PATH: run \`npm run setup\` (it installs ${name})`
}

interface Result {
  code: number | null
  signal: NodeJS.Signals | null
  output: string
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: providerDir, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    const collect = (c: Buffer) => {
      output += c.toString()
    }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    const timer = setTimeout(() => {
      output += `\n[killed after ${timeoutMs / 1000}s]`
      child.kill('SIGTERM')
    }, timeoutMs)
    child.on('error', (err) => {
      output += `\n${err.message}`
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, output })
    })
  })
}

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, CHECKPOINT_DISABLE: '1', ...extra }
  // The provider falls back to these; the tests configure the provider explicitly.
  delete e.SIGIL_SERVER
  delete e.SIGIL_TOKEN
  delete e.SIGIL_CA_BUNDLE
  return e
}

t.test('terraform provider: go vet, gofmt, unit and acceptance tests', async (t) => {
  const missing = ['go', 'terraform', 'node'].map(missingTool).filter((m): m is string => m !== undefined)
  if (missing.length > 0) {
    t.fail(missing.join('; '))
    return
  }

  const vet = await run('go', ['vet', './...'], env(), 15 * 60_000)
  t.equal(vet.code, 0, 'go vet ./... passes', { output: vet.output })
  if (vet.code !== 0) t.comment(vet.output)

  const fmt = await run('gofmt', ['-l', '.'], env(), 60_000)
  t.equal(fmt.code, 0, 'gofmt runs', { output: fmt.output })
  t.equal(fmt.output.trim(), '', 'gofmt -l . lists no file (run `gofmt -w .` in terraform/provider)')

  const test = await run(
    'go',
    ['test', './...', '-count=1', '-v', `-timeout=${GO_TEST_TIMEOUT_MINUTES}m`],
    env({ TF_ACC: '1' }),
    (GO_TEST_TIMEOUT_MINUTES + 2) * 60_000,
  )
  const failed = test.output
    .split('\n')
    .filter((l) => /^\s*--- FAIL/.test(l))
    .join('\n')
  t.equal(test.code, 0, `TF_ACC=1 go test ./... passes${failed ? `\n${failed}` : ''}`)
  if (test.code !== 0) t.comment(test.output)
  const passed = test.output.match(/^\s*--- PASS: TestAcc\w+/gm) ?? []
  t.ok(passed.length >= 10, `the acceptance tests ran (${passed.length} passed), not skipped`)
  t.notMatch(test.output, /--- SKIP: TestAcc/, 'no acceptance test was skipped')
})
