// Install assets (infra/ and terraform/modules/): the kustomize overlays render and keep the security
// properties that matter; the systemd units verify; infra/vm/install.sh installs into a --root
// directory, idempotently and without printing secrets; the Terraform modules are formatted and
// validate, and the trust-domain module is applied against a real `sigil server run`.
//
// What cannot run here, and what the tests do instead:
// - No Docker engine: infra/docker/Dockerfile.* are only checked textually.
// - `terraform init` cannot download providers (the network reaches package registries only). The
//   sigil provider is built from terraform/provider into a temp dir and used through dev_overrides.
//   hashicorp/aws comes from a local filesystem mirror (/opt/tf-plugins, or $SIGIL_TF_PLUGIN_MIRROR),
//   so aws-vm-agent is fully validated and planned (with fake credentials, no AWS call). When the
//   mirror also holds hashicorp/kubernetes, k8s-agent is validated too; otherwise it gets only what
//   works offline: `terraform fmt`, `terraform providers` (parses every file) and structural checks of
//   its text. Nothing is applied to a cluster or an AWS account.

import { type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import path from 'node:path'
import type { TLSSocket } from 'node:tls'
import t, { type Test } from 'tap'
import YAML from 'yaml'
import { startServerProcess } from '../helpers/server-process.ts'
import { sigilProviderHcl } from '../helpers/terraform.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'

const root = path.resolve(import.meta.dirname, '../..')
const k8sDir = path.join(root, 'infra/k8s')
const vmDir = path.join(root, 'infra/vm')
const modulesDir = path.join(root, 'terraform/modules')
const installSh = path.join(vmDir, 'install.sh')

t.setTimeout(10 * 60_000)

function sh(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
) {
  return spawnSync(cmd, args, {
    cwd: opts.cwd ?? root,
    env: opts.env ?? process.env,
    input: opts.input,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  }) as SpawnSyncReturns<string>
}

function out(r: SpawnSyncReturns<string>): string {
  return `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? `\n${r.error.message}` : ''}`
}

// Async variant for long commands (go build, terraform apply), so tap's timers keep running.
function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<{ code: number | null; output: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    let stdout = ''
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString()
      stdout += c.toString()
    })
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString()
    })
    child.on('error', (err) => {
      output += `\n${err.message}`
    })
    child.on('close', (code) => resolve({ code, output, stdout }))
  })
}

// ---------------------------------------------------------------------------------------------------
// Kubernetes (kustomize)

type Obj = Record<string, any>

function render(overlay: string): Obj[] {
  const r = sh('kubectl', ['kustomize', path.join(k8sDir, overlay)])
  if (r.status !== 0) throw new Error(`kubectl kustomize ${overlay} failed:\n${out(r)}`)
  return YAML.parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Obj)
    .filter(Boolean)
}

function findKey(value: unknown, key: string, pathSoFar = ''): { path: string; value: unknown }[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => findKey(v, key, `${pathSoFar}[${i}]`))
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => [
      ...(k === key ? [{ path: `${pathSoFar}.${k}`, value: v }] : []),
      ...findKey(v, key, `${pathSoFar}.${k}`),
    ])
  }
  return []
}

const workloadKinds = new Set(['Deployment', 'DaemonSet', 'StatefulSet'])

function podSpecs(docs: Obj[]): { obj: Obj; spec: Obj }[] {
  return docs.filter((d) => workloadKinds.has(d.kind)).map((obj) => ({ obj, spec: obj.spec.template.spec }))
}

function byKind(docs: Obj[], kind: string, name: string): Obj | undefined {
  return docs.find((d) => d.kind === kind && d.metadata?.name === name)
}

function checkCommonWorkloadRules(t: Test, docs: Obj[]) {
  t.same(
    findKey(docs, 'privileged').filter((p) => p.value === true),
    [],
    'no privileged: true anywhere',
  )
  t.same(
    findKey(docs, 'allowPrivilegeEscalation').filter((p) => p.value !== false),
    [],
    'allowPrivilegeEscalation is never true',
  )
  for (const { obj, spec } of podSpecs(docs)) {
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      const where = `${obj.kind}/${obj.metadata.name} container ${c.name}`
      t.ok(c.resources?.limits?.cpu && c.resources?.limits?.memory, `${where}: cpu and memory limits`)
      t.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${where}: cpu and memory requests`)
      t.ok(c.readinessProbe, `${where}: readiness probe`)
      t.ok(c.livenessProbe, `${where}: liveness probe`)
      t.same(c.securityContext?.capabilities?.drop, ['ALL'], `${where}: drops ALL capabilities`)
      t.equal(c.securityContext?.readOnlyRootFilesystem, true, `${where}: read-only root filesystem`)
      // Kubernetes leaves an undefined $(VAR) in args as is: every reference must be defined.
      const defined = new Set<string>((c.env ?? []).map((e: Obj) => e.name))
      for (const from of c.envFrom ?? []) {
        const cm = byKind(docs, 'ConfigMap', from.configMapRef?.name)
        t.ok(cm, `${where}: envFrom ConfigMap ${from.configMapRef?.name} is rendered`)
        for (const k of Object.keys(cm?.data ?? {})) defined.add(k)
      }
      for (const arg of c.args ?? []) {
        for (const m of String(arg).matchAll(/\$\(([A-Z_][A-Z0-9_]*)\)/g)) {
          t.ok(defined.has(m[1]!), `${where}: $(${m[1]}) in args is defined`)
        }
      }
    }
  }
}

function argValue(args: string[], flag: string): string[] {
  const values: string[] = []
  args.forEach((a, i) => {
    if (a === flag && i + 1 < args.length) values.push(args[i + 1]!)
  })
  return values
}

function checkAgent(t: Test, docs: Obj[], expectServer: RegExp) {
  const ds = byKind(docs, 'DaemonSet', 'sigil-agent')
  t.ok(ds, 'the agent DaemonSet is rendered')
  if (!ds) return
  const spec = ds.spec.template.spec
  t.equal(ds.metadata.namespace, 'sigil-system', 'agent in sigil-system')
  t.equal(spec.hostPID, true, 'agent has hostPID')
  t.equal(spec.serviceAccountName, 'sigil-agent', 'agent runs as ServiceAccount sigil-agent')
  t.equal(spec.containers.length, 1, 'one agent container')
  const c = spec.containers[0]
  t.same(
    [...(c.securityContext.capabilities.add ?? [])].sort(),
    ['DAC_READ_SEARCH', 'SYS_PTRACE'],
    'agent adds only SYS_PTRACE and DAC_READ_SEARCH',
  )
  t.notOk(c.securityContext.privileged, 'agent is not privileged')
  const args: string[] = c.args
  t.same(args.slice(0, 2), ['agent', 'run'], 'agent run')
  t.same(argValue(args, '--attestor'), ['k8s_psat'], '--attestor k8s_psat')
  t.ok(
    argValue(args, '--attestor-option').some((o) => o.startsWith('cluster=')),
    'cluster= option',
  )
  t.same(argValue(args, '--kubelet-url'), ['https://127.0.0.1:10250/pods'], '--kubelet-url')
  t.same(argValue(args, '--socket'), ['/run/sigil/agent.sock'], '--socket')
  const trustBundle = argValue(args, '--trust-bundle')[0]
  const nodeOptions = (c.env as Obj[]).find((e) => e.name === 'NODE_OPTIONS')?.value
  t.equal(nodeOptions, '--max-semi-space-size=2 --max-old-space-size=128', 'NODE_OPTIONS')

  const volumes: Obj[] = spec.volumes
  const socketVol = volumes.find((v) => v.hostPath?.path === '/run/sigil')
  t.equal(socketVol?.hostPath.type, 'DirectoryOrCreate', '/run/sigil is a hostPath (DirectoryOrCreate)')
  t.ok(
    c.volumeMounts.some((m: Obj) => m.name === socketVol?.name && m.mountPath === '/run/sigil'),
    'the socket directory is mounted at /run/sigil',
  )
  const psat = volumes
    .flatMap((v) => v.projected?.sources ?? [])
    .find((s: Obj) => s.serviceAccountToken)?.serviceAccountToken
  t.equal(psat?.audience, 'sigil', 'projected service account token with audience sigil')
  const psatVol = volumes.find((v) => v.projected)
  const psatMount = c.volumeMounts.find((m: Obj) => m.name === psatVol?.name)
  const tokenPath = argValue(args, '--attestor-option')
    .find((o) => o.startsWith('tokenPath='))
    ?.slice('tokenPath='.length)
  t.equal(tokenPath, `${psatMount?.mountPath}/${psat?.path}`, 'tokenPath points at the projected token')

  const caVol = volumes.find((v) => v.configMap?.name === 'sigil-server-ca')
  const caMount = c.volumeMounts.find((m: Obj) => m.name === caVol?.name)
  t.ok(caVol && caMount, 'the server CA comes from the ConfigMap sigil-server-ca')
  t.equal(trustBundle, `${caMount?.mountPath}/server-ca.pem`, '--trust-bundle is the mounted server CA')

  const cm = byKind(docs, 'ConfigMap', c.envFrom?.[0]?.configMapRef?.name)
  t.match(cm?.data?.SIGIL_SERVER, expectServer, 'the agent points at the expected server')

  // RBAC: a ServiceAccount, and a ClusterRole that reads only the kubelet pod list.
  t.ok(byKind(docs, 'ServiceAccount', 'sigil-agent'), 'ServiceAccount sigil-agent')
  const role = byKind(docs, 'ClusterRole', 'sigil-agent')
  t.ok(role, 'ClusterRole sigil-agent')
  for (const rule of role?.rules ?? []) {
    t.same(rule.apiGroups, [''], 'core API group only')
    t.same(rule.verbs, ['get'], 'verb get only')
    t.ok(
      (rule.resources as string[]).every((r) => r === 'nodes/proxy' || r === 'nodes/pods'),
      `only nodes/proxy or nodes/pods (got ${rule.resources})`,
    )
  }
  const binding = byKind(docs, 'ClusterRoleBinding', 'sigil-agent')
  t.same(
    binding?.subjects,
    [{ kind: 'ServiceAccount', name: 'sigil-agent', namespace: 'sigil-system' }],
    'the binding names the agent ServiceAccount in sigil-system',
  )
}

t.test('kustomize: overlays render with the required security properties', async (t) => {
  requireTool('kubectl', 'install kubectl: https://kubernetes.io/docs/tasks/tools/ (it includes kustomize)')

  t.test('single-cluster: server and agent in sigil-system', async (t) => {
    const docs = render('overlays/single-cluster')
    checkCommonWorkloadRules(t, docs)
    checkAgent(t, docs, /^https:\/\/sigil-server\.sigil-system\.svc:8443$/)
    for (const d of docs) {
      if (!['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(d.kind)) {
        t.equal(d.metadata.namespace, 'sigil-system', `${d.kind}/${d.metadata.name} in sigil-system`)
      }
    }
    const dep = byKind(docs, 'Deployment', 'sigil-server')
    t.ok(dep, 'the server Deployment is rendered')
    const pod = dep!.spec.template.spec
    const c = pod.containers[0]
    t.equal(c.image, 'ghcr.io/sigil-dev/sigil:latest', 'server image')
    t.same(argValue(c.args, '--listen'), ['0.0.0.0:8443'], 'server listens on 0.0.0.0:8443')
    t.same(argValue(c.args, '--data-dir'), ['/var/lib/sigil'], 'server data dir')
    t.same(c.args.slice(0, 2), ['server', 'run'], 'server run')
    t.ok(pod.securityContext.runAsNonRoot && c.securityContext.runAsNonRoot, 'server runs as non-root')
    t.ok(pod.securityContext.runAsUser > 0, 'server runs with a non-zero uid')
    t.equal(c.securityContext.readOnlyRootFilesystem, true, 'server has a read-only root filesystem')
    t.same(c.readinessProbe.httpGet, { scheme: 'HTTPS', path: '/readyz', port: 'https' }, 'readiness /readyz')
    t.same(c.livenessProbe.httpGet, { scheme: 'HTTPS', path: '/healthz', port: 'https' }, 'liveness /healthz')
    const kek = (c.env as Obj[]).find((e) => e.name === 'SIGIL_KEK')
    t.same(kek?.valueFrom?.secretKeyRef, { name: 'sigil-kek', key: 'kek' }, 'SIGIL_KEK from a Secret')
    const dataVol = (pod.volumes as Obj[]).find(
      (v) => v.name === c.volumeMounts.find((m: Obj) => m.mountPath === '/var/lib/sigil')?.name,
    )
    t.ok(dataVol?.persistentVolumeClaim, 'the data directory is a PersistentVolumeClaim')
    t.ok(byKind(docs, 'PersistentVolumeClaim', dataVol?.persistentVolumeClaim?.claimName), 'PVC rendered')
    const svc = byKind(docs, 'Service', 'sigil-server')
    t.same(svc?.spec.selector, dep!.spec.selector.matchLabels, 'the Service selects the server pods')
    t.equal(svc?.spec.ports[0].port, 8443, 'Service port 8443')
    const cfg = byKind(docs, 'ConfigMap', 'sigil-server-config')
    t.match(
      cfg?.data['server.yaml'],
      /sigil-server\.sigil-system\.svc/,
      'server certificate names the Service',
    )
  })

  t.test('saas: agent only, pointing at a central service', async (t) => {
    const docs = render('overlays/saas')
    checkCommonWorkloadRules(t, docs)
    checkAgent(t, docs, /^https:\/\/(?!sigil-server\.)[^/]+$/)
    t.notOk(
      docs.some((d) => d.kind === 'Deployment' || d.kind === 'StatefulSet'),
      'no server or store in the SaaS overlay',
    )
    t.notOk(byKind(docs, 'Secret', 'sigil-kek'), 'no KEK Secret')
  })

  t.test('redis base: AOF on, same rules', async (t) => {
    const docs = render('redis')
    checkCommonWorkloadRules(t, docs)
    const sts = byKind(docs, 'StatefulSet', 'sigil-redis')
    const args: string[] = sts?.spec.template.spec.containers[0].args ?? []
    t.same(argValue(args, '--appendonly'), ['yes'], 'appendonly yes')
    t.ok(sts?.spec.volumeClaimTemplates?.length, 'Redis data on a volume')
  })
})

t.test(
  'the server runs with the rendered server.yaml; probe paths answer; certificate names the Service',
  async (t) => {
    requireTool('kubectl', 'install kubectl: https://kubernetes.io/docs/tasks/tools/ (it includes kustomize)')
    const docs = render('overlays/single-cluster')
    const dep = byKind(docs, 'Deployment', 'sigil-server')!
    const c = dep.spec.template.spec.containers[0]
    const dir = tempDir(t, 'sigil-k8s-server-')
    const config = path.join(dir, 'server.yaml')
    writeFileSync(config, byKind(docs, 'ConfigMap', 'sigil-server-config')!.data['server.yaml'])
    // The Deployment's args, with the paths and the listen address moved to this machine.
    const args = (c.args as string[]).map((a) =>
      a === '/etc/sigil/server.yaml'
        ? config
        : a === '/var/lib/sigil'
          ? path.join(dir, 'data')
          : a === '0.0.0.0:8443'
            ? '127.0.0.1:0'
            : a,
    )
    const proc = spawn(process.execPath, [path.join(root, 'bin/sigil.js'), ...args], {
      env: { ...process.env, SIGIL_KEK: randomBytes(32).toString('base64') },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    t.teardown(() => {
      proc.kill('SIGTERM')
    })
    let logs = ''
    const url = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 30_000)
      const onData = (chunk: Buffer) => {
        logs += chunk.toString()
        const m = /"url":"(https:\/\/[^"]+)".*listening/.exec(logs)
        if (m) {
          clearTimeout(timer)
          resolve(m[1])
        }
      }
      proc.stdout.on('data', onData)
      proc.stderr.on('data', onData)
      proc.once('exit', () => resolve(undefined))
    })
    t.ok(url, 'the server starts with the Deployment args and the ConfigMap', { logs })
    if (!url) return
    const ca = readFileSync(path.join(dir, 'data/server-ca.pem'), 'utf8')
    const get = (p: string) =>
      new Promise<{ status?: number; san?: string }>((resolve, reject) => {
        const req = https.get(new URL(p, url), { ca }, (res) => {
          const cert = (res.socket as TLSSocket).getPeerCertificate()
          res.resume()
          resolve({ status: res.statusCode, san: cert.subjectaltname })
        })
        req.on('error', reject)
      })
    const ready = await get(c.readinessProbe.httpGet.path)
    t.equal(ready.status, 200, `readiness probe path ${c.readinessProbe.httpGet.path} answers 200 over HTTPS`)
    const live = await get(c.livenessProbe.httpGet.path)
    t.equal(live.status, 200, `liveness probe path ${c.livenessProbe.httpGet.path} answers 200 over HTTPS`)
    t.match(ready.san, /DNS:sigil-server\.sigil-system\.svc(,|$)/, 'the certificate names the Service')
  },
)

// ---------------------------------------------------------------------------------------------------
// systemd units

const requiredDirectives: Record<string, RegExp[]> = {
  'sigil-server.service': [
    /^User=sigil$/m,
    /^CapabilityBoundingSet=$/m,
    /^StateDirectory=sigil$/m,
    /^EnvironmentFile=-?\/etc\/sigil\/server\.env$/m,
    /^ExecStart=\S*node \/opt\/sigil\/bin\/sigil\.js server run /m,
  ],
  'sigil-agent.service': [
    /^CapabilityBoundingSet=CAP_SYS_PTRACE CAP_DAC_READ_SEARCH$/m,
    /^RuntimeDirectory=sigil$/m,
    /^StateDirectory=sigil-agent$/m,
    /^EnvironmentFile=\/etc\/sigil\/agent\.env$/m,
    /^ExecStart=\S*node \/opt\/sigil\/bin\/sigil\.js agent run .*--socket \/run\/sigil\/agent\.sock/m,
  ],
}
const commonDirectives = [
  /^ProtectSystem=strict$/m,
  /^ProtectHome=yes$/m,
  /^NoNewPrivileges=yes$/m,
  /^PrivateTmp=yes$/m,
  /^RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6$/m,
  /^SystemCallFilter=@system-service$/m,
  /^AmbientCapabilities=$/m,
  /^WantedBy=multi-user\.target$/m,
]

t.test('systemd units: sandboxing directives, systemd-analyze verify and security', async (t) => {
  for (const [unit, required] of Object.entries(requiredDirectives)) {
    const text = readFileSync(path.join(vmDir, unit), 'utf8')
    for (const re of [...commonDirectives, ...required]) t.match(text, re, `${unit}: ${re.source}`)
    t.notMatch(text, /^User=root$[\s\S]*CapabilityBoundingSet=$/m, `${unit}: no root with an empty set`)
  }
  t.notMatch(
    readFileSync(path.join(vmDir, 'sigil-server.service'), 'utf8'),
    /^RuntimeDirectory=sigil$/m,
    'the server does not own /run/sigil (stopping it would delete the agent socket)',
  )

  const analyze = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' })
  if (analyze.status !== 0) {
    t.comment('systemd-analyze not on PATH: checked the directives textually only')
    return
  }
  // Verify the units as install.sh writes them (ExecStart uses the node found on PATH).
  const dir = tempDir(t, 'sigil-units-')
  const node = process.execPath
  const units = Object.keys(requiredDirectives).map((unit) => {
    const p = path.join(dir, unit)
    writeFileSync(p, readFileSync(path.join(vmDir, unit), 'utf8').replace('/usr/bin/node ', `${node} `))
    return p
  })
  const verify = sh('systemd-analyze', ['verify', ...units])
  t.equal(verify.status, 0, 'systemd-analyze verify passes', { output: out(verify) })
  t.notMatch(out(verify), /sigil-(server|agent)\.service/, 'no warning about the units', {
    output: out(verify),
  })
  for (const unit of units) {
    const sec = sh('systemd-analyze', ['security', '--offline=true', '--threshold=30', '--no-pager', unit])
    const level = /Overall exposure level for \S+: ([\d.]+)/.exec(out(sec))?.[1]
    t.equal(
      sec.status,
      0,
      `${path.basename(unit)}: exposure ${level} is at most 3.0 (systemd-analyze security --threshold=30, on its 0-100 scale)`,
    )
  }
})

// ---------------------------------------------------------------------------------------------------
// infra/vm/install.sh

function treeDigest(dir: string): Record<string, string> {
  const outMap: Record<string, string> = {}
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name)
      const st = statSync(p)
      const rel = path.relative(dir, p)
      if (st.isDirectory()) walk(p)
      else
        outMap[rel] =
          `${(st.mode & 0o7777).toString(8)} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`
    }
  }
  walk(dir)
  return outMap
}

function mode(p: string): string {
  return (statSync(p).mode & 0o777).toString(8).padStart(4, '0')
}

t.test('install.sh --root: places files, 0600 secrets, idempotent, no secret on stdout', async (t) => {
  // Run with a POSIX shell: dash where present (Debian's /bin/sh), else sh.
  const shell = spawnSync('sh', ['-c', 'command -v dash'], { encoding: 'utf8' }).stdout.trim() || 'sh'
  const syntax = sh(shell, ['-n', installSh])
  t.equal(syntax.status, 0, `${shell} -n install.sh`, { output: out(syntax) })

  const dir = tempDir(t, 'sigil-install-')
  const rootDir = path.join(dir, 'root')
  mkdirSync(rootDir)
  const ca = path.join(dir, 'ca.pem')
  writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n')
  const secret = 'sjt_0123456789abcdefSECRET'
  const base = ['--root', rootDir, '--no-npm', '--server', 'https://sigil.example.com:8443']
  const agentArgs = [...base, '--trust-domain', 'example.org', '--trust-bundle', ca]

  const first = sh(shell, [installSh, ...agentArgs, '--join-token', secret])
  t.equal(first.status, 0, 'install.sh (join token) succeeds', { output: out(first) })
  t.notMatch(out(first), secret, 'the join token is not printed')
  t.notMatch(out(first), /0123456789abcdef/, 'no part of the token is printed')

  const etc = path.join(rootDir, 'etc')
  const unitPath = path.join(etc, 'systemd/system/sigil-agent.service')
  t.ok(existsSync(unitPath), 'sigil-agent.service installed')
  const unitText = readFileSync(unitPath, 'utf8')
  for (const re of [...commonDirectives, ...requiredDirectives['sigil-agent.service']!]) {
    t.match(unitText, re, `installed unit keeps ${re.source}`)
  }
  t.equal(mode(unitPath), '0644', 'unit file mode 0644')
  const envPath = path.join(etc, 'sigil/agent.env')
  t.equal(mode(envPath), '0600', 'agent.env mode 0600')
  const env = readFileSync(envPath, 'utf8')
  t.match(env, /^SIGIL_SERVER=https:\/\/sigil\.example\.com:8443$/m, 'agent.env: server')
  t.match(env, /^SIGIL_TRUST_DOMAIN=example\.org$/m, 'agent.env: trust domain')
  t.match(env, /^SIGIL_TRUST_BUNDLE=\/etc\/sigil\/server-ca\.pem$/m, 'agent.env: trust bundle')
  t.match(
    env,
    /^SIGIL_AGENT_ARGS=--attestor join_token --attestor-config \/etc\/sigil\/join-token\.yaml$/m,
    'the token is read from a file, not passed on the command line (/proc/<pid>/cmdline is world-readable)',
  )
  const tokenFile = path.join(etc, 'sigil/join-token.yaml')
  t.equal(mode(tokenFile), '0600', 'join-token.yaml mode 0600')
  t.same(YAML.parse(readFileSync(tokenFile, 'utf8')), { token: secret }, 'join-token.yaml holds the token')
  t.equal(readFileSync(path.join(etc, 'sigil/server-ca.pem'), 'utf8'), readFileSync(ca, 'utf8'), 'CA copied')
  t.match(readFileSync(path.join(etc, 'passwd'), 'utf8'), /^sigil:x:\d+:\d+:/m, 'sigil user created')
  t.ok(existsSync(path.join(rootDir, 'opt/sigil/bin/sigil.js')), '/opt/sigil/bin/sigil.js placed')
  t.ok(existsSync(path.join(rootDir, 'opt/sigil/infra/vm/install.sh')), '/opt/sigil holds the tree')
  t.notOk(existsSync(path.join(rootDir, 'opt/sigil/.git')), 'no .git in /opt/sigil')
  t.notOk(existsSync(path.join(rootDir, 'opt/sigil/node_modules')), 'no dev node_modules copied')
  t.match(out(first), /not running systemctl/, 'says it skipped systemctl')

  const before = treeDigest(etc)
  const again = sh(shell, [installSh, ...agentArgs, '--join-token', secret])
  t.equal(again.status, 0, 'second run succeeds')
  t.same(treeDigest(etc), before, 'a second run with the same flags changes nothing')
  t.equal(
    readFileSync(path.join(etc, 'passwd'), 'utf8').match(/^sigil:/gm)?.length,
    1,
    'the user is not added twice',
  )

  const aws = sh(shell, [installSh, ...agentArgs, '--attestor', 'aws_iid', '--attestor-option', 'x=y'])
  t.equal(aws.status, 0, 'aws_iid install succeeds', { output: out(aws) })
  t.match(
    readFileSync(envPath, 'utf8'),
    /^SIGIL_AGENT_ARGS=--attestor aws_iid --attestor-option x=y$/m,
    'agent.env: aws_iid',
  )
  t.notOk(existsSync(tokenFile), 'switching to aws_iid removes the join token file')

  const bad = [
    [...agentArgs, '--join-token', 'a b'],
    [...agentArgs, '--join-token', secret, '--attestor', 'aws_iid'],
    [...agentArgs],
    [
      ...base,
      '--trust-domain',
      'example.org',
      '--trust-bundle',
      path.join(dir, 'missing.pem'),
      '--join-token',
      'x',
    ],
    [
      '--root',
      rootDir,
      '--no-npm',
      '--server',
      'http://plain:8443',
      '--trust-domain',
      'x',
      '--trust-bundle',
      ca,
    ],
  ]
  const snapshot = treeDigest(etc)
  for (const args of bad) {
    const r = sh(shell, [installSh, ...args])
    t.equal(r.status, 2, `refused: ${args.slice(3).join(' ').replace(ca, 'CA')}`, { output: out(r) })
    t.match(r.stderr, /error: /, 'with an error message on stderr')
  }
  t.same(treeDigest(etc), snapshot, 'refused runs change nothing')

  // Server component: a KEK generated once, 0600, never printed, kept on reinstall.
  const server = sh(shell, [installSh, '--root', rootDir, '--no-npm', '--component', 'server'])
  t.equal(server.status, 0, 'server install succeeds', { output: out(server) })
  const serverEnvPath = path.join(etc, 'sigil/server.env')
  t.equal(mode(serverEnvPath), '0600', 'server.env mode 0600')
  const kek = /^SIGIL_KEK=(\S+)$/m.exec(readFileSync(serverEnvPath, 'utf8'))?.[1]
  t.equal(Buffer.from(kek ?? '', 'base64').length, 32, 'SIGIL_KEK is 32 bytes in base64')
  t.notMatch(out(server), kek ?? '<none>', 'the KEK is not printed')
  t.ok(existsSync(path.join(etc, 'systemd/system/sigil-server.service')), 'sigil-server.service installed')
  sh(shell, [installSh, '--root', rootDir, '--no-npm', '--component', 'server'])
  t.match(readFileSync(serverEnvPath, 'utf8'), `SIGIL_KEK=${kek}`, 'the KEK survives a reinstall')

  // A tarball with a top directory (as GitHub archives have) as --source.
  const src = path.join(dir, 'src/sigil-1.0')
  mkdirSync(path.join(src, 'bin'), { recursive: true })
  writeFileSync(path.join(src, 'package.json'), '{"name":"sigil"}\n')
  writeFileSync(path.join(src, 'bin/sigil.js'), '// marker-from-tarball\n')
  const tarball = path.join(dir, 'sigil.tar.gz')
  t.equal(sh('tar', ['-czf', tarball, '-C', path.join(dir, 'src'), 'sigil-1.0']).status, 0, 'tarball built')
  const root2 = path.join(dir, 'root2')
  mkdirSync(root2)
  const fromTar = sh(shell, [
    installSh,
    ...agentArgs.map((a) => (a === rootDir ? root2 : a)),
    '--source',
    tarball,
    '--attestor',
    'aws_iid',
  ])
  t.equal(fromTar.status, 0, 'install from a tarball succeeds', { output: out(fromTar) })
  t.match(readFileSync(path.join(root2, 'opt/sigil/bin/sigil.js'), 'utf8'), /marker-from-tarball/, 'unpacked')
})

// ---------------------------------------------------------------------------------------------------
// Dockerfiles (no Docker engine here: textual checks only)

t.test(
  'Dockerfiles: multi-stage node:20-slim, npm ci --omit=dev, native addon, non-root server',
  async (t) => {
    const server = readFileSync(path.join(root, 'infra/docker/Dockerfile.server'), 'utf8')
    const agent = readFileSync(path.join(root, 'infra/docker/Dockerfile.agent'), 'utf8')
    for (const [name, text] of [
      ['server', server],
      ['agent', agent],
    ] as const) {
      t.ok((text.match(/^FROM node:20-slim/gm) ?? []).length >= 2, `${name}: multi-stage on node:20-slim`)
      t.match(text, /npm ci --omit=dev/, `${name}: production dependencies only`)
      t.match(text, /^ENTRYPOINT \["node", "\/opt\/sigil\/bin\/sigil\.js"\]/m, `${name}: sigil entrypoint`)
    }
    t.match(server, /^USER 10001/m, 'server: non-root user')
    t.match(agent, /npm run build:native/, 'agent: builds the native addon')
    t.match(agent, /COPY --from=build \/src\/agents\/native\/build/, 'agent: ships the built addon')
    t.match(agent, /COPY --from=build \/src\/dist \.\/dist/, 'agent: ships the compiled JavaScript')
    t.match(server, /COPY --from=deps \/src\/dist \.\/dist/, 'server: ships the compiled JavaScript')
    t.match(server, /npm run build:console/, 'server: builds the console')
  },
)

// ---------------------------------------------------------------------------------------------------
// Terraform modules

t.test('terraform modules: fmt, validate, plan; trust-domain applied against a real server', async (t) => {
  requireTool('terraform', 'install Terraform >= 1.5: https://developer.hashicorp.com/terraform/install')
  requireTool('go', 'install Go: https://go.dev/doc/install')

  const fmt = sh('terraform', ['fmt', '-check', '-recursive', '-diff', modulesDir])
  t.equal(fmt.status, 0, 'terraform fmt -check -recursive terraform/modules', { output: out(fmt) })

  for (const m of ['trust-domain', 'k8s-agent', 'aws-vm-agent']) {
    const files = readdirSync(path.join(modulesDir, m))
    for (const f of ['README.md', 'variables.tf', 'outputs.tf', 'main.tf', 'versions.tf']) {
      t.ok(files.includes(f), `${m}/${f}`)
    }
    const vars = readFileSync(path.join(modulesDir, m, 'variables.tf'), 'utf8')
    const blocks = vars.split(/^variable /m).slice(1)
    t.ok(
      blocks.every((b) => /\n\s+description\s+=/.test(b)),
      `${m}: every variable has a description`,
    )
    t.ok(/validation \{/.test(vars), `${m}: variables have validation`)
  }

  const dir = tempDir(t, 'sigil-tf-')
  const bin = path.join(dir, 'bin')
  const build = await run('go', ['build', '-o', path.join(bin, 'terraform-provider-sigil'), '.'], {
    cwd: path.join(root, 'terraform/provider'),
    env: process.env,
  })
  t.equal(build.code, 0, 'terraform-provider-sigil builds', { output: build.output })
  if (build.code !== 0) return

  const mirror = process.env.SIGIL_TF_PLUGIN_MIRROR ?? '/opt/tf-plugins'
  const mirrored = (p: string) => existsSync(path.join(mirror, 'registry.terraform.io/hashicorp', p))
  const include = ['aws', 'kubernetes'].filter(mirrored).map((p) => `"registry.terraform.io/hashicorp/${p}"`)
  const tfrc = path.join(dir, 'dev.tfrc')
  writeFileSync(
    tfrc,
    `provider_installation {
  dev_overrides {
    "sigil/sigil" = "${bin}"
  }
${include.length ? `  filesystem_mirror {\n    path    = "${mirror}"\n    include = [${include.join(', ')}]\n  }\n` : ''}}
`,
  )
  const tfEnv: NodeJS.ProcessEnv = {
    ...process.env,
    TF_CLI_CONFIG_FILE: tfrc,
    CHECKPOINT_DISABLE: '1',
    TF_IN_AUTOMATION: '1',
    TF_INPUT: '0',
  }
  delete tfEnv.SIGIL_SERVER
  delete tfEnv.SIGIL_TOKEN
  delete tfEnv.SIGIL_CA_BUNDLE
  const tf = (cwd: string, ...args: string[]) => run('terraform', [...args, '-no-color'], { cwd, env: tfEnv })

  // Work on copies so no .terraform directory or lock file lands in the repository.
  const mods = path.join(dir, 'modules')
  cpSync(modulesDir, mods, { recursive: true })

  t.test('trust-domain: validate, variable validation, apply and destroy', async (t) => {
    const v = await tf(path.join(mods, 'trust-domain'), 'validate')
    t.equal(v.code, 0, 'terraform validate (dev_overrides, no init needed)', { output: v.output })

    const server = await startServerProcess(t, { dataDir: path.join(dir, 'server') })
    writeFileSync(path.join(dir, 'ca.pem'), server.caPem)
    const work = path.join(dir, 'td-root')
    const writeRoot = (moduleArgs: string) => {
      mkdirSync(work, { recursive: true })
      writeFileSync(
        path.join(work, 'main.tf'),
        `${sigilProviderHcl(server, path.join(dir, 'ca.pem'))}module "td" {
  source = "${path.join(mods, 'trust-domain')}"
${moduleArgs}
}
output "join_token" {
  value     = module.td.join_token
  sensitive = true
}
output "join_token_id" { value = module.td.join_token_id }
output "entry_ids" { value = module.td.entry_ids }
output "name" { value = module.td.name }
`,
      )
    }
    const good = `  name        = "infra.example.org"
  policy_mode = "explicit"
  ttls        = { x509_default = "30m", x509_max = "2h" }
  entries = {
    node = {
      spiffe_id = "spiffe://infra.example.org/node/node-1"
      parent_id = "spiffe://infra.example.org/sigil/agent/join_token/node-1"
      selectors = ["join_token:token:node-1"]
    }
    web = {
      spiffe_id = "spiffe://infra.example.org/web"
      parent_id = "spiffe://infra.example.org/node/node-1"
      selectors = ["unix:uid:1000", "unix:path:/usr/bin/web"]
      dns_names = ["web.infra.example.org"]
      x509_ttl  = "10m"
    }
  }
  join_token = { ttl = "2h", spiffe_id = "spiffe://infra.example.org/sigil/agent/join_token/node-1" }`
    writeRoot(good)
    const get = await tf(work, 'get')
    t.equal(get.code, 0, 'terraform get', { output: get.output })

    const refused: [string, RegExp][] = [
      ['  name = "Bad_Name:443"', /SPIFFE trust domain name/],
      ['  name = "a.org"\n  policy_mode = "strict"', /policy_mode must be baseline or explicit/],
      ['  name = "a.org"\n  ttls = { x509_max = "2 hours" }', /Each TTL must be a duration/],
      [
        '  name = "a.org"\n  entries = { x = { spiffe_id = "spiffe://other.org/x", parent_id = "spiffe://a.org/p", selectors = ["unix:uid:1"] } }',
        /in this\s+trust domain/,
      ],
      [
        '  name = "a.org"\n  entries = { x = { spiffe_id = "spiffe://a.org/x", parent_id = "spiffe://a.org/p", selectors = [] } }',
        /at least one selector/,
      ],
      ['  name = "a.org"\n  join_token = { spiffe_id = "spiffe://a.org/web" }', /must be an agent ID/],
      [
        '  name = "a.org"\n  entries = {\n' +
          '    a = { spiffe_id = "spiffe://a.org/a", parent_id = "spiffe://a.org/sigil/server", selectors = ["k8s:ns:x"] }\n' +
          '    b = { spiffe_id = "spiffe://a.org/b", parent_id = "spiffe://a.org/a", selectors = ["k8s:ns:x"] }\n' +
          '    c = { spiffe_id = "spiffe://a.org/c", parent_id = "spiffe://a.org/b", selectors = ["k8s:ns:x"] }\n  }',
        /only one level\s+deep/,
      ],
    ]
    for (const [args, message] of refused) {
      writeRoot(args)
      const p = await tf(work, 'plan')
      t.not(p.code, 0, `plan refuses: ${args.trim().split('\n').pop()}`)
      t.match(p.output, message, 'with the validation message', { output: p.output })
    }

    writeRoot(good)
    const apply = await tf(work, 'apply', '-auto-approve')
    t.equal(apply.code, 0, 'terraform apply', { output: apply.output })
    if (apply.code !== 0) return
    const api = server.client()
    t.teardown(() => api.close())
    const td = await api.request<Obj>('GET', '/v1/trust-domains/infra.example.org')
    t.match(JSON.stringify(td), /explicit/, 'the trust domain exists with policy mode explicit')
    const list = await api.request<{ entries: Obj[] }>('GET', '/v1/trust-domains/infra.example.org/entries')
    const web = list.entries.find((e) => e.spiffeId === 'spiffe://infra.example.org/web')
    t.same([...(web?.selectors ?? [])].sort(), ['unix:path:/usr/bin/web', 'unix:uid:1000'], 'web entry')
    t.equal(list.entries.length, 2, 'two entries')
    const outputs = await tf(work, 'output', '-json')
    const o = JSON.parse(outputs.stdout) as Obj
    t.same(Object.keys(o.entry_ids.value).sort(), ['node', 'web'], 'entry_ids output')
    t.equal(o.entry_ids.value.web, web?.id, 'entry_ids.web is the server ID')
    t.equal(o.join_token.sensitive, true, 'join_token output is sensitive')
    t.ok(typeof o.join_token.value === 'string' && o.join_token.value.length > 16, 'a join token was made')
    t.match(o.join_token_id.value, /^[0-9a-f]{64}$/, 'join_token_id is a SHA-256')
    t.notMatch(apply.output, o.join_token.value, 'apply does not print the token')

    const plan = await tf(work, 'plan', '-detailed-exitcode')
    t.equal(plan.code, 0, 'a second plan is empty (no drift)', { output: plan.output })

    const destroy = await tf(work, 'destroy', '-auto-approve')
    t.equal(destroy.code, 0, 'terraform destroy', { output: destroy.output })
    const after = await api.request<{ trustDomains?: Obj[]; items?: Obj[] } & Obj>('GET', '/v1/trust-domains')
    t.notMatch(JSON.stringify(after), /infra\.example\.org/, 'the trust domain is gone')
  })

  t.test('aws-vm-agent: init from the local mirror, validate, plan user_data', async (t) => {
    if (!mirrored('aws')) {
      t.fail(
        `hashicorp/aws not in the provider mirror ${mirror}: on a machine with network run ` +
          '`terraform providers mirror /opt/tf-plugins` in terraform/modules/aws-vm-agent (or set SIGIL_TF_PLUGIN_MIRROR)',
      )
      return
    }
    const mod = path.join(mods, 'aws-vm-agent')
    const init = await tf(mod, 'init', '-backend=false')
    t.equal(init.code, 0, 'terraform init (filesystem mirror)', { output: init.output })
    const v = await tf(mod, 'validate')
    t.equal(v.code, 0, 'terraform validate', { output: v.output })

    // Plan through a root module with fake credentials: creating a launch template calls no AWS API.
    const work = path.join(dir, 'aws-root')
    mkdirSync(work)
    const writeRoot = (extra: string) =>
      writeFileSync(
        path.join(work, 'main.tf'),
        `terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}
provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}
module "agent" {
  source            = "${mod}"
  server_url        = "https://sigil.example.com:8443"
  trust_domain      = "prod.example.org"
  server_ca_pem     = "-----BEGIN CERTIFICATE-----\\nMIIBfake\\n-----END CERTIFICATE-----\\n"
  sigil_tarball_url = "https://example.com/sigil.tar.gz"
  attestor_options  = { region = "eu-west-1" }
  tags              = { role = "web" }
${extra}
}
output "user_data" { value = module.agent.user_data }
`,
      )
    writeRoot('  image_id = "ami-0123456789abcdef0"')
    const rinit = await tf(work, 'init', '-backend=false')
    t.equal(rinit.code, 0, 'root init', { output: rinit.output })
    const plan = await tf(work, 'plan', '-out=plan.bin')
    t.equal(plan.code, 0, 'terraform plan', { output: plan.output })
    if (plan.code !== 0) return
    const show = await tf(work, 'show', '-json', 'plan.bin')
    const planned = JSON.parse(show.stdout) as Obj
    const userData: string = planned.planned_values.outputs.user_data.value
    const lt = planned.planned_values.root_module.child_modules[0].resources.find(
      (r: Obj) => r.type === 'aws_launch_template',
    )
    t.ok(lt, 'an aws_launch_template is planned')
    t.equal(Buffer.from(lt.values.user_data, 'base64').toString(), userData, 'user_data is the script')
    t.equal(lt.values.metadata_options[0].http_tokens, 'required', 'IMDSv2 required (aws_iid)')
    t.match(userData, /infra\/vm\/install\.sh" --source/, 'user_data runs infra/vm/install.sh')
    t.match(userData, /--attestor aws_iid --attestor-option region=eu-west-1/, 'with --attestor aws_iid')
    t.match(userData, /--server 'https:\/\/sigil\.example\.com:8443' --trust-domain 'prod\.example\.org'/)
    t.match(userData, /-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\nPEM/, 'CA embedded')
    const script = path.join(dir, 'user-data.sh')
    writeFileSync(script, userData)
    const syntax = sh('sh', ['-n', script])
    t.equal(syntax.status, 0, 'user_data is valid sh', { output: out(syntax) })

    writeRoot('  image_id = "not-an-ami"')
    const bad = await tf(work, 'plan')
    t.not(bad.code, 0, 'a bad image_id is refused')
    t.match(bad.output, /image_id must be an AMI ID/, 'by the variable validation')
  })

  t.test('k8s-agent: what can be checked offline', async (t) => {
    const mod = path.join(mods, 'k8s-agent')
    // terraform providers parses every file of the module without needing the provider.
    const providers = await tf(mod, 'providers')
    t.equal(providers.code, 0, 'terraform providers parses the module', { output: providers.output })
    t.match(providers.output, /hashicorp\/kubernetes/, 'it needs hashicorp/kubernetes')
    if (mirrored('kubernetes')) {
      const init = await tf(mod, 'init', '-backend=false')
      t.equal(init.code, 0, 'terraform init (filesystem mirror)', { output: init.output })
      const v = await tf(mod, 'validate')
      t.equal(v.code, 0, 'terraform validate', { output: v.output })
    } else {
      t.comment(
        `hashicorp/kubernetes is not in ${mirror} and cannot be downloaded here: k8s-agent is not ` +
          '`terraform validate`d, only parsed and checked textually (run `terraform providers mirror` to enable it)',
      )
    }
    // The DaemonSet keeps the same security properties as the kustomize base.
    const main = readFileSync(path.join(mod, 'main.tf'), 'utf8')
    t.match(main, /resource "kubernetes_daemon_set_v1"/, 'a kubernetes_daemon_set_v1')
    t.match(main, /host_pid\s+= true/, 'host_pid = true')
    t.notMatch(main, /privileged\s+= true/, 'not privileged')
    t.match(main, /privileged\s+= false/, 'privileged = false explicitly')
    t.match(
      main,
      /drop = \["ALL"\]\s+add\s+= \["SYS_PTRACE", "DAC_READ_SEARCH"\]/,
      'only the two capabilities',
    )
    t.match(main, /type = "DirectoryOrCreate"/, 'hostPath DirectoryOrCreate')
    t.match(main, /service_account_token \{[^}]*audience\s+= var\.psat_audience/, 'projected token audience')
    t.match(main, /readiness_probe \{/, 'readiness probe')
    t.match(main, /liveness_probe \{/, 'liveness probe')
    t.match(main, /limits\s+= var\.resources\.limits/, 'resource limits')
    t.match(main, /resources\s+= \["nodes\/pods", "nodes\/proxy"\]\s+verbs\s+= \["get"\]/, 'RBAC: get only')
    const kustomizeArgs = (render('overlays/saas').find((d) => d.kind === 'DaemonSet')?.spec.template.spec
      .containers[0].args ?? []) as string[]
    for (const flag of new Set(kustomizeArgs.filter((a) => a.startsWith('--')))) {
      t.match(main, `"${flag}"`, `the module passes ${flag} like the kustomize base`)
    }
  })
})
