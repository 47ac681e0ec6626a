// Real external tools used by tests. A missing tool fails the test with the command that installs it.

import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

export function requireTool(name: string, install: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' })
  if (found.status !== 0) throw new Error(`${name} not found: run \`npm run setup\` (or: ${install})`)
  return found.stdout.trim()
}

export function tempDir(t: { teardown(fn: () => void): void }, prefix = 'sigil-test-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Runs `openssl verify` on a leaf (first cert of chainPem) with the rest as untrusted intermediates. */
export function opensslVerify(
  dir: string,
  chainPem: string,
  bundlePem: string,
  purpose: 'sslclient' | 'sslserver',
): { ok: boolean; output: string } {
  requireTool('openssl', 'apt-get install openssl')
  const certs = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? []
  const leaf = path.join(dir, `leaf-${Math.random().toString(36).slice(2)}.pem`)
  const untrusted = `${leaf}.chain`
  const roots = `${leaf}.roots`
  writeFileSync(leaf, certs[0] ?? '')
  writeFileSync(untrusted, certs.slice(1).join('\n'))
  writeFileSync(roots, bundlePem)
  const args = ['verify', '-purpose', purpose, '-CAfile', roots]
  if (certs.length > 1) args.push('-untrusted', untrusted)
  args.push(leaf)
  const res = spawnSync('openssl', args, { encoding: 'utf8' })
  return { ok: res.status === 0, output: `${res.stdout}${res.stderr}` }
}

export function opensslText(pem: string): string {
  requireTool('openssl', 'apt-get install openssl')
  return execFileSync('openssl', ['x509', '-noout', '-text'], { input: pem, encoding: 'utf8' })
}
