// The real terraform binary with the provider built from terraform/provider and taken through
// dev_overrides, like a user's local setup; and a small command runner that collects the output.

import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'

export const repoRoot = path.resolve(import.meta.dirname, '../..')

export interface CommandResult {
  code: number | null
  output: string
}

/** Runs a command to its end; stdout and stderr together in `output`, never a rejection. */
export function runCommand(
  cmd: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    const collect = (c: Buffer) => {
      output += c.toString()
    }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    child.on('error', (err) => {
      output += `\n${err.message}`
    })
    child.on('close', (code) => resolve({ code, output }))
  })
}

/**
 * Builds terraform-provider-sigil into DIR/bin and returns the build's result, an environment whose CLI
 * configuration takes it through dev_overrides (SIGIL_* variables removed, so each configuration says
 * where its server is), and `tf(cwd, ...args)` running terraform there.
 */
export async function devOverridesProvider(dir: string): Promise<{
  build: CommandResult
  env: NodeJS.ProcessEnv
  tf(cwd: string, ...args: string[]): Promise<CommandResult>
}> {
  const bin = path.join(dir, 'bin')
  const build = await runCommand(
    'go',
    ['build', '-o', path.join(bin, 'terraform-provider-sigil'), '.'],
    path.join(repoRoot, 'terraform/provider'),
    process.env,
  )
  const tfrc = path.join(dir, 'dev.tfrc')
  writeFileSync(tfrc, `provider_installation {\n  dev_overrides {\n    "sigil/sigil" = "${bin}"\n  }\n}\n`)
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TF_CLI_CONFIG_FILE: tfrc,
    CHECKPOINT_DISABLE: '1',
    TF_IN_AUTOMATION: '1',
    TF_INPUT: '0',
  }
  delete env.SIGIL_SERVER
  delete env.SIGIL_TOKEN
  delete env.SIGIL_CA_BUNDLE
  return { build, env, tf: (cwd, ...args) => runCommand('terraform', [...args, '-no-color'], cwd, env) }
}

/** The start of a root module: the sigil provider, pointed at a test server through its CA file. */
export function sigilProviderHcl(server: { url: string; token: string }, caFile: string): string {
  return `terraform {
  required_providers {
    sigil = { source = "sigil/sigil" }
  }
}
provider "sigil" {
  server    = "${server.url}"
  token     = "${server.token}"
  ca_bundle = "${caFile}"
}
`
}
