// The quick start exactly as terraform/provider/README.md tells it: `npm run build:provider`, the example
// CLI configuration (dev_overrides + the local mirror), then `terraform init && terraform apply` against a
// running Sigil, which provisions a trust domain, entries, a join token and a policy; plan is empty
// afterwards, and destroy removes it all. The real terraform binary, a real server.

import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { startServerProcess } from '../helpers/server-process.ts'
import { runCommand } from '../helpers/terraform.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'

const root = path.resolve(import.meta.dirname, '../..')
const quickstart = path.join(root, 'terraform/provider/examples/quickstart')
t.setTimeout(10 * 60_000)

t.test(
  'terraform init && terraform apply provision a trust domain, entries, a join token and a policy',
  async (t) => {
    requireTool('terraform', 'install Terraform >= 1.5: https://developer.hashicorp.com/terraform/install')
    requireTool('go', 'install Go: https://go.dev/doc/install (or run npm run setup)')
    const dir = tempDir(t, 'sigil-tf-quickstart-')
    const build = await runCommand('npm', ['run', '-s', 'build:provider'], root, process.env)
    t.equal(build.code, 0, 'npm run build:provider', { output: build.output })
    const server = await startServerProcess(t, { dataDir: path.join(dir, '.sigil') })
    const tfrc = path.join(dir, 'dev.tfrc')
    writeFileSync(
      tfrc,
      readFileSync(path.join(quickstart, 'dev.tfrc.example'), 'utf8').replaceAll(
        '/ABSOLUTE/PATH/TO/REPO',
        root,
      ),
    )
    const work = path.join(dir, 'quickstart')
    await runCommand('mkdir', ['-p', work], dir, process.env)
    copyFileSync(path.join(quickstart, 'main.tf'), path.join(work, 'main.tf'))
    const env = {
      ...process.env,
      TF_CLI_CONFIG_FILE: tfrc,
      TF_IN_AUTOMATION: '1',
      CHECKPOINT_DISABLE: '1',
      SIGIL_SERVER: server.url,
      SIGIL_TOKEN: server.token,
      SIGIL_CA_BUNDLE: path.join(server.dataDir, 'server-ca.pem'),
    }
    const init = await runCommand('terraform', ['init', '-input=false', '-no-color'], work, env)
    t.equal(init.code, 0, 'terraform init', { output: init.output })
    const apply = await runCommand(
      'terraform',
      ['apply', '-auto-approve', '-input=false', '-no-color'],
      work,
      env,
    )
    t.equal(apply.code, 0, 'terraform apply', { output: apply.output })
    t.match(apply.output, /Apply complete! Resources: \d+ added/)

    const api = server.client()
    t.teardown(() => api.close())
    const td = 'quickstart.example.org'
    const domain = await api.request<{ name: string }>('GET', `/v1/trust-domains/${td}`)
    t.equal(domain.name, td, 'the trust domain exists')
    const entries = await api.request<{ entries: unknown[] }>('GET', `/v1/trust-domains/${td}/entries`)
    t.ok(entries.entries.length > 0, 'with its entries')
    const tokens = await api.request<{ joinTokens?: unknown[]; tokens?: unknown[] }>(
      'GET',
      `/v1/trust-domains/${td}/join-tokens`,
    )
    t.ok((tokens.joinTokens ?? tokens.tokens ?? []).length > 0, 'a join token')
    const policy = await api.request<{ version: number; rules: unknown[] }>(
      'GET',
      `/v1/trust-domains/${td}/policy`,
    )
    t.ok(policy.version >= 1 && policy.rules.length > 0, 'and its policy')

    const plan = await runCommand(
      'terraform',
      ['plan', '-detailed-exitcode', '-input=false', '-no-color'],
      work,
      env,
    )
    t.equal(plan.code, 0, 'the plan after apply is empty', { output: plan.output })
    const destroy = await runCommand(
      'terraform',
      ['destroy', '-auto-approve', '-input=false', '-no-color'],
      work,
      env,
    )
    t.equal(destroy.code, 0, 'terraform destroy', { output: destroy.output })
  },
)
