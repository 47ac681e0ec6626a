// The trust-domain module (terraform/modules/trust-domain) with its `tunnels` input: the variable's
// validations refuse bad tunnels at plan time, a tunnel is created as a sigil_tunnel (service defaults
// to its name), replaced when it changes (the API has no update), planned again when deleted through the
// API, and deleted with the input. Against a real `sigil server run`, with the provider built from
// terraform/provider and taken through dev_overrides, like module-policy.test.ts.

import { cpSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { startServerProcess } from '../helpers/server-process.ts'
import { devOverridesProvider, sigilProviderHcl } from '../helpers/terraform.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'

const root = path.resolve(import.meta.dirname, '../..')
const td = 'module-tunnels.example.org'
const agent = `spiffe://${td}/sigil/agent/join_token/db-1`

t.setTimeout(10 * 60_000)

interface TunnelView {
  name: string
  spiffeId: string
  agent: string
  service: string
  port: number | null
  createdAt: string
}

t.test('trust-domain module: tunnels input', async (t) => {
  requireTool('terraform', 'install Terraform >= 1.5: https://developer.hashicorp.com/terraform/install')
  requireTool('go', 'install Go: https://go.dev/doc/install')
  const dir = tempDir(t, 'sigil-tf-module-tunnels-')
  const { build, tf } = await devOverridesProvider(dir)
  t.equal(build.code, 0, 'terraform-provider-sigil builds', { output: build.output })
  if (build.code !== 0) return

  // A copy, so no .terraform directory lands in the repository.
  const module = path.join(dir, 'trust-domain')
  cpSync(path.join(root, 'terraform/modules/trust-domain'), module, { recursive: true })
  const validate = await tf(module, 'validate')
  t.equal(validate.code, 0, 'terraform validate of the module', { output: validate.output })

  const server = await startServerProcess(t, { dataDir: path.join(dir, 'server') })
  writeFileSync(path.join(dir, 'ca.pem'), server.caPem)
  const api = server.client()
  t.teardown(() => api.close())
  const list = async () =>
    (await api.request<{ tunnels: TunnelView[] }>('GET', `/v1/trust-domains/${td}/tunnels`)).tunnels

  const work = path.join(dir, 'root')
  mkdirSync(work, { recursive: true })
  const writeRoot = (tunnels: string) =>
    writeFileSync(
      path.join(work, 'main.tf'),
      `${sigilProviderHcl(server, path.join(dir, 'ca.pem'))}module "td" {
  source  = "${module}"
  name    = "${td}"
  tunnels = {
${tunnels}
  }
}
output "tunnel_ids" { value = module.td.tunnel_ids }
`,
    )
  const tunnel = (name: string, extra = '', spiffeId = `spiffe://${td}/db`, agentId = agent) =>
    `    ${name} = { spiffe_id = "${spiffeId}", agent = "${agentId}"${extra} }`

  writeRoot('')
  const get = await tf(work, 'get')
  t.equal(get.code, 0, 'terraform get', { output: get.output })

  const refused: Array<[string, RegExp]> = [
    [tunnel('"My_DB"'), /Tunnel names \(the keys of tunnels\) must be DNS labels/],
    [tunnel('db', '', 'spiffe://other.example.org/db'), /spiffe_id must be a SPIFFE ID of this trust domain/],
    [tunnel('db', '', `spiffe://${td}/db`, `spiffe://${td}/db`), /its agent the SPIFFE ID of an agent of it/],
    [tunnel('db', ', port = 70000'), /port must be a whole number between 1 and 65535/],
    // What the variable lets through, the provider refuses at plan time.
    [tunnel('db', ', service = "Postgres"'), /"Postgres" has uppercase letters; use "postgres"/],
  ]
  for (const [args, message] of refused) {
    writeRoot(args)
    const plan = await tf(work, 'plan')
    t.not(plan.code, 0, `plan refuses ${args.trim()}`)
    t.match(plan.output.replace(/\s+/g, ' '), message, 'with the message', { output: plan.output })
  }

  writeRoot(tunnel('db', ', port = 5432'))
  const apply = await tf(work, 'apply', '-auto-approve')
  t.equal(apply.code, 0, 'terraform apply', { output: apply.output })
  if (apply.code !== 0) return
  let tunnels = await list()
  t.same(
    tunnels.map((x) => [x.name, x.spiffeId, x.agent, x.service, x.port]),
    [['db', `spiffe://${td}/db`, agent, 'db', 5432]],
    'the tunnel, its service defaulting to its name',
  )
  t.match(
    apply.output,
    new RegExp(`tunnel_ids = \\{\\s*"db" = "${td.replace(/\./g, '\\.')}/db"`),
    'tunnel_ids',
  )
  const empty = await tf(work, 'plan', '-detailed-exitcode')
  t.equal(empty.code, 0, 'a second plan is empty', { output: empty.output })

  // Another port: the tunnel is replaced (the API has no update).
  writeRoot(tunnel('db', ', port = 5433'))
  const replace = await tf(work, 'apply', '-auto-approve')
  t.equal(replace.code, 0, 'apply of a changed tunnel', { output: replace.output })
  t.match(
    replace.output,
    /module\.td\.sigil_tunnel\.this\["db"\] must be replaced/,
    'planned as a replacement',
  )
  t.match(replace.output, /1 added, 0 changed, 1 destroyed/, 'destroyed and created')
  tunnels = await list()
  t.same(
    tunnels.map((x) => [x.name, x.port]),
    [['db', 5433]],
    'the new port',
  )

  // Drift: deleted through the API, the plan creates it again; apply does.
  await api.request('DELETE', `/v1/trust-domains/${td}/tunnels/db`)
  const drift = await tf(work, 'plan', '-detailed-exitcode')
  t.equal(drift.code, 2, 'the plan is not empty after a deletion through the API', { output: drift.output })
  t.match(
    drift.output,
    /module\.td\.sigil_tunnel\.this\["db"\] will be created/,
    'it creates the tunnel again',
  )
  const restore = await tf(work, 'apply', '-auto-approve')
  t.equal(restore.code, 0, 'apply restores the tunnel', { output: restore.output })
  t.equal((await list()).length, 1, 'the tunnel is back')

  // Without it in the input, the tunnel is deleted and the trust domain stays.
  writeRoot('')
  const remove = await tf(work, 'apply', '-auto-approve')
  t.equal(remove.code, 0, 'apply without the tunnel', { output: remove.output })
  t.same(await list(), [], 'the tunnel is deleted')

  const destroy = await tf(work, 'destroy', '-auto-approve')
  t.equal(destroy.code, 0, 'terraform destroy', { output: destroy.output })
})
