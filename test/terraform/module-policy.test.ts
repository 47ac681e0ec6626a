// The trust-domain module (terraform/modules/trust-domain) with its `policy` input: the variable's
// validations refuse bad policies at plan time, and a policy is applied as a sigil_policy (one dynamic
// `rule` block per rule), changed in place, shown as drift when changed through the API, and reset
// when the input goes away. Against a real `sigil server run`, with the provider built from
// terraform/provider and taken through dev_overrides, like a user's local setup.

import { cpSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { startServerProcess } from '../helpers/server-process.ts'
import { devOverridesProvider, sigilProviderHcl } from '../helpers/terraform.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'

const root = path.resolve(import.meta.dirname, '../..')
const td = 'module-policy.example.org'

t.setTimeout(10 * 60_000)

interface PolicyView {
  version: number
  mode: string
  allowWithin: string[]
  rules: Array<{ name: string; action: string; from: Record<string, string>; to: Record<string, unknown> }>
}

t.test('trust-domain module: policy input', async (t) => {
  requireTool('terraform', 'install Terraform >= 1.5: https://developer.hashicorp.com/terraform/install')
  requireTool('go', 'install Go: https://go.dev/doc/install')
  const dir = tempDir(t, 'sigil-tf-module-policy-')
  const { build, tf } = await devOverridesProvider(dir)
  t.equal(build.code, 0, 'terraform-provider-sigil builds', { output: build.output })
  if (build.code !== 0) return

  // A copy, so no .terraform directory lands in the repository.
  const module = path.join(dir, 'trust-domain')
  cpSync(path.join(root, 'terraform/modules/trust-domain'), module, { recursive: true })
  const validate = await tf(module, 'validate')
  t.equal(validate.code, 0, 'terraform validate of the module (dev_overrides, no init needed)', {
    output: validate.output,
  })

  const server = await startServerProcess(t, { dataDir: path.join(dir, 'server') })
  writeFileSync(path.join(dir, 'ca.pem'), server.caPem)
  const api = server.client()
  t.teardown(() => api.close())
  const getPolicy = () => api.request<PolicyView>('GET', `/v1/trust-domains/${td}/policy`)

  const work = path.join(dir, 'root')
  mkdirSync(work, { recursive: true })
  const writeRoot = (moduleArgs: string) =>
    writeFileSync(
      path.join(work, 'main.tf'),
      `${sigilProviderHcl(server, path.join(dir, 'ca.pem'))}module "td" {
  source      = "${module}"
  name        = "${td}"
  policy_mode = "explicit"
${moduleArgs}
}
output "policy_version" { value = module.td.policy_version }
`,
    )
  const rule = (name: string, from: string, to: string, extra = '') =>
    `{ name = "${name}"${extra}, from = { ${from} }, to = { ${to} } }`
  const web = `spiffe_id = "spiffe://${td}/web"`
  const db = `spiffe_id = "spiffe://${td}/db"`

  writeRoot('')
  const get = await tf(work, 'get')
  t.equal(get.code, 0, 'terraform get', { output: get.output })

  const refused: Array<[string, RegExp]> = [
    [`policy = { mode = "strict" }`, /policy\.mode must be baseline or explicit/],
    [`policy = { rules = [${rule('web to db', web, db)}] }`, /needs a name of 1 to 128/],
    [`policy = { rules = [${rule('a', web, db)}, ${rule('a', web, db)}] }`, /rule names must be unique/],
    [`policy = { rules = [${rule('a', '', db)}] }`, /from needs a spiffe_id or a selector/],
    [
      `policy = { rules = [${rule('a', web, `${db}, fqdn = "db.example.com"`)}] }`,
      /fqdn and spiffe_id cannot be combined/,
    ],
    [
      `policy = { rules = [${rule('a', 'spiffe_id = "spiffe://other.org/web"', db)}] }`,
      /only name SPIFFE IDs of this trust domain/,
    ],
    [`policy = { rules = [${rule('a', web, `${db}, ports = ["70000"]`)}] }`, /between 1 and 65535/],
    [`policy = { rules = [${rule('a', web, `${db}, ports = ["https"]`)}] }`, /between 1 and 65535/],
    [`policy = { rules = [${rule('a', web, `${db}, ports = []`)}] }`, /leave ports out/],
    // What the variable lets through, the provider refuses at plan time.
    [`policy = { allow_within = ["k8s:ns:prod"] }`, /drop the value, as in "k8s:ns"/],
    [`policy = { rules = [${rule('a', web, 'fqdn = "*.com"')}] }`, /too broad/],
  ]
  for (const [args, message] of refused) {
    writeRoot(`  ${args}`)
    const plan = await tf(work, 'plan')
    t.not(plan.code, 0, `plan refuses ${args}`)
    t.match(plan.output.replace(/\s+/g, ' '), message, 'with the message', { output: plan.output })
  }

  // policy.mode defaults to the module's policy_mode; numbers in ports are fine.
  const first = `  policy = {
    allow_within = ["k8s:ns"]
    rules = [
      ${rule('web-to-db', web, `${db}, ports = [5432]`)},
    ]
  }`
  writeRoot(first)
  const apply = await tf(work, 'apply', '-auto-approve')
  t.equal(apply.code, 0, 'terraform apply', { output: apply.output })
  if (apply.code !== 0) return
  let p = await getPolicy()
  t.equal(p.mode, 'explicit', 'the policy mode is the module policy_mode')
  t.same(p.allowWithin, ['k8s:ns'], 'allowWithin')
  t.same(
    p.rules.map((r) => [r.name, r.action, r.from.spiffeId, r.to.spiffeId, r.to.ports]),
    [['web-to-db', 'allow', `spiffe://${td}/web`, `spiffe://${td}/db`, [5432]]],
    'the rule',
  )
  const plan = await tf(work, 'plan', '-detailed-exitcode')
  t.equal(plan.code, 0, 'a second plan is empty', { output: plan.output })

  // Another rule and another mode: the policy changes in place, the trust domain stays.
  const second = `  policy = {
    mode         = "baseline"
    allow_within = ["k8s:ns"]
    rules = [
      ${rule('web-to-db', web, `${db}, ports = ["5432", "8000-8100"]`)},
      ${rule('no-debug-shells', 'selector = "unix:path:/bin/sh"', db, ', action = "deny"')},
    ]
  }`
  writeRoot(second)
  const update = await tf(work, 'apply', '-auto-approve')
  t.equal(update.code, 0, 'terraform apply of a changed policy', { output: update.output })
  t.match(update.output, /0 added, 1 changed, 0 destroyed/, 'one resource changed in place')
  p = await getPolicy()
  t.equal(p.mode, 'baseline', 'the mode changed')
  t.same(
    p.rules.map((r) => [r.name, r.action, r.to.ports]),
    [
      ['web-to-db', 'allow', [5432, '8000-8100']],
      ['no-debug-shells', 'deny', undefined],
    ],
    'the rules, in order',
  )
  const version = p.version

  // Drift: a change through the API shows in the plan; apply restores the configuration.
  await api.request('PUT', `/v1/trust-domains/${td}/policy`, {
    policy: { mode: 'explicit', allowWithin: [], rules: [] },
    expectedVersion: version,
  })
  const drift = await tf(work, 'plan', '-detailed-exitcode')
  t.equal(drift.code, 2, 'the plan shows the change made through the API', { output: drift.output })
  t.match(
    drift.output,
    /module\.td\.sigil_policy\.this\[0\] will be updated in-place/,
    'as an update of the policy',
  )
  const restore = await tf(work, 'apply', '-auto-approve')
  t.equal(restore.code, 0, 'apply restores the policy', { output: restore.output })
  p = await getPolicy()
  t.equal(p.rules.length, 2, 'the rules are back')
  t.equal(p.version, version + 2, 'as the version after the API change')

  // Without the input, the policy is reset (a new version, no rules), the trust domain stays, and its
  // policy_mode ("explicit") sets the mode again (another version).
  writeRoot('')
  const reset = await tf(work, 'apply', '-auto-approve')
  t.equal(reset.code, 0, 'apply without a policy', { output: reset.output })
  t.match(reset.output, /sigil_policy\.this\[0\]: Destruction complete/, 'the policy resource is destroyed')
  p = await getPolicy()
  t.equal(p.rules.length, 0, 'the policy has no rules')
  t.same(p.allowWithin, [], 'nor allowWithin')
  t.ok(p.version > version + 2, `reset as a new version (${p.version})`)
  t.equal(p.mode, 'explicit', 'in the mode of the module policy_mode')
  const again = await tf(work, 'plan', '-detailed-exitcode')
  t.equal(again.code, 0, 'and the plan is empty', { output: again.output })

  const destroy = await tf(work, 'destroy', '-auto-approve')
  t.equal(destroy.code, 0, 'terraform destroy', { output: destroy.output })
})
