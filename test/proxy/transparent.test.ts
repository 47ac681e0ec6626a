// Transparent mode: inside a network namespace the test creates, iptables REDIRECT sends a client's
// connection for 10.99.0.1:5432 to the agent, which reads SO_ORIGINAL_DST and carries it over the mesh.
// The whole scenario runs in the namespace (transparent-scenario.ts), so nothing touches the host's
// network configuration.

import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'
import t from 'tap'
import { requireTool } from '../helpers/tools.ts'

const ns = `sigil-tp-${process.pid}`
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' })
const inNs = (...args: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...args], { stdio: 'pipe' })

t.test('iptables REDIRECT + SO_ORIGINAL_DST carry an unmodified client into the mesh', async (t) => {
  requireTool('ip', 'apt-get install -y iproute2 (or npm run setup)')
  requireTool('iptables', 'apt-get install -y iptables (or npm run setup)')
  if (process.getuid?.() !== 0) throw new Error('creating a network namespace needs root (ip netns add)')
  ip('netns', 'add', ns)
  t.teardown(() => ip('netns', 'del', ns))
  inNs('ip', 'link', 'set', 'lo', 'up')
  inNs('ip', 'addr', 'add', '10.99.0.1/32', 'dev', 'lo')
  const transparentPort = 15001
  inNs(
    'iptables',
    '-t',
    'nat',
    '-A',
    'OUTPUT',
    '-p',
    'tcp',
    '-d',
    '10.99.0.1',
    '--dport',
    '5432',
    '-j',
    'REDIRECT',
    '--to-ports',
    String(transparentPort),
  )
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns,
      process.execPath,
      '--import',
      'tsx',
      path.join(import.meta.dirname, 'transparent-scenario.ts'),
      String(transparentPort),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => {
    out += d
  })
  child.stderr.on('data', (d) => {
    err += d
  })
  await once(child, 'exit')
  const line = out.trim().split('\n').pop() ?? ''
  let result: { ok: boolean; error?: string; stdout?: string; direct?: string; flow?: Record<string, any> }
  try {
    result = JSON.parse(line)
  } catch {
    throw new Error(`the scenario printed no result:\n${out}\n${err}`)
  }
  t.ok(result.ok, result.error ?? 'the scenario ran')
  t.equal(result.stdout, 'echo:through-the-redirect\n', 'the redirected connection reached the service')
  t.equal(result.direct, 'direct\n'.replace(/^/, 'echo:'), 'control: the service answers directly')
  t.equal(result.flow?.source.spiffeId, 'spiffe://example.org/web', 'identified by its code-DNA')
  t.equal(result.flow?.destination.spiffeId, 'spiffe://example.org/db')
  t.equal(result.flow?.verdict, 'allowed')
})
