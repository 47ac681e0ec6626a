// `sigil agent run`: attest, then serve the Workload API from the identity cache until stopped.

import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import YAML from 'yaml'
import { collect, UsageError } from '../../services/cli/context.ts'
import { createLogger } from '../../services/observability/logger.ts'
import { agentNodeAttestorNames, createAgentNodeAttestor } from '../attestation/node/registry.ts'
import { formatHostPort, type ProxyConfig, ProxyConfigError, parseProxyConfig } from '../proxy/config.ts'
import { createWorkloadAttestor } from '../workload/attestor.ts'
import { DEFAULT_KUBELET_TOKEN_FILE, HttpKubeletClient } from '../workload/kubelet.ts'
import { startWorkloadApi } from '../workload-api/server.ts'
import { resolveSocketPath } from '../workload-api/socket-path.ts'
import { Agent } from './agent.ts'
import { type DataPlane, startDataPlane } from './data-plane.ts'

interface RunOptions {
  server?: string
  trustDomain: string
  trustBundle: string
  joinToken?: string
  attestor?: string
  attestorConfig?: string
  attestorOption?: string[]
  socket?: string
  kubeletUrl?: string
  kubeletTokenFile?: string
  kubeletCa?: string
  kubeletInsecureSkipVerify?: boolean
  dataDir?: string
  logLevel?: string
  proxyConfig?: string
}

function attestorConfig(opts: RunOptions): { name: string; config: Record<string, unknown> } {
  if (opts.joinToken) return { name: 'join_token', config: { token: opts.joinToken } }
  if (!opts.attestor) throw new UsageError('give --join-token TOKEN or --attestor NAME (with its options)')
  if (!(agentNodeAttestorNames as string[]).includes(opts.attestor)) {
    throw new UsageError(`--attestor must be one of ${agentNodeAttestorNames.join(', ')}`)
  }
  let config: Record<string, unknown> = {}
  if (opts.attestorConfig) {
    try {
      config = YAML.parse(readFileSync(opts.attestorConfig, 'utf8')) ?? {}
    } catch (err) {
      throw new UsageError(`cannot read --attestor-config ${opts.attestorConfig}: ${(err as Error).message}`)
    }
  }
  for (const pair of opts.attestorOption ?? []) {
    const i = pair.indexOf('=')
    if (i <= 0) throw new UsageError(`--attestor-option ${JSON.stringify(pair)} must be KEY=VALUE`)
    config[pair.slice(0, i)] = pair.slice(i + 1)
  }
  return { name: opts.attestor, config }
}

function kubeletOptions(opts: RunOptions): ConstructorParameters<typeof HttpKubeletClient>[0] {
  const k: ConstructorParameters<typeof HttpKubeletClient>[0] = {
    url: opts.kubeletUrl!,
    tokenFile: opts.kubeletTokenFile ?? DEFAULT_KUBELET_TOKEN_FILE,
  }
  if (opts.kubeletCa) {
    try {
      k.ca = readFileSync(opts.kubeletCa, 'utf8')
    } catch (err) {
      throw new UsageError(`cannot read --kubelet-ca ${opts.kubeletCa}: ${(err as Error).message}`)
    }
  }
  if (opts.kubeletInsecureSkipVerify) k.insecureSkipVerify = true
  return k
}

export function agentRunCommand(agent: Command): void {
  agent
    .command('run')
    .description('Run the node agent: attest this node, serve the SPIFFE Workload API on a Unix socket')
    .requiredOption('--trust-domain <td>', 'the trust domain to join')
    .requiredOption('--trust-bundle <file>', "the trust service's CA (its server-ca.pem)")
    .option('--join-token <token>', 'attest with a join token (sigil token create)')
    .option('--attestor <name>', `node attestor: ${agentNodeAttestorNames.join(', ')}`)
    .option(
      '--attestor-config <file>',
      'YAML/JSON options of the attestor (e.g. k8s_psat: {cluster, tokenPath})',
    )
    .option('--attestor-option <key=value>', 'one attestor option (repeatable)', collect)
    .option(
      '--socket <path>',
      'Workload API socket (default $SPIFFE_ENDPOINT_SOCKET, else /run/sigil/agent.sock)',
    )
    .option(
      '--kubelet-url <url>',
      'attest Kubernetes pods through this kubelet pod list (e.g. https://127.0.0.1:10250/pods)',
    )
    .option(
      '--kubelet-token-file <file>',
      "bearer token for the kubelet (default: the pod's service account token)",
    )
    .option('--kubelet-ca <file>', "CA bundle of the kubelet's serving certificate")
    .option(
      '--kubelet-insecure-skip-verify',
      'trust any kubelet certificate (kubelets often self-sign); explicit opt-in',
    )
    .option('--proxy-config <file>', 'the mTLS proxy configuration: mesh port, services, upstreams, egress')
    .option('--data-dir <dir>', 'agent data directory (nothing secret is stored there)')
    .option('--log-level <level>', 'info (default), debug, warn, error')
    .action(async (opts: RunOptions, cmd: Command) => {
      const server = (cmd.optsWithGlobals() as { server: string }).server
      let trustBundlePem: string
      try {
        trustBundlePem = readFileSync(opts.trustBundle, 'utf8')
      } catch (err) {
        throw new UsageError(`cannot read --trust-bundle ${opts.trustBundle}: ${(err as Error).message}`)
      }
      let proxyConfig: ProxyConfig | undefined
      if (opts.proxyConfig) {
        let text: string
        try {
          text = readFileSync(opts.proxyConfig, 'utf8')
        } catch (err) {
          throw new UsageError(`cannot read --proxy-config ${opts.proxyConfig}: ${(err as Error).message}`)
        }
        try {
          proxyConfig = parseProxyConfig(text)
        } catch (err) {
          if (err instanceof ProxyConfigError)
            throw new UsageError(`${opts.proxyConfig}:${err.line}: ${err.message.replace(/^line \d+, /, '')}`)
          throw err
        }
      }
      const { name, config } = attestorConfig(opts)
      const log = createLogger((opts.logLevel ?? process.env.SIGIL_LOG_LEVEL ?? 'info') as 'info')
      let nodeAttestor: Awaited<ReturnType<typeof createAgentNodeAttestor>>
      try {
        nodeAttestor = await createAgentNodeAttestor(name, config)
      } catch (err) {
        throw new UsageError((err as Error).message)
      }
      const socketPath = resolveSocketPath(opts.socket, process.env)
      const daemon = new Agent({
        server: new URL(server),
        trustDomain: opts.trustDomain,
        trustBundlePem,
        attestor: nodeAttestor,
        log: log.child({ component: 'agent' }),
      })
      await daemon.start()
      const workloadAttestor = createWorkloadAttestor(
        opts.kubeletUrl ? { k8s: { kubelet: new HttpKubeletClient(kubeletOptions(opts)) } } : {},
      )
      const api = await startWorkloadApi({
        socketPath,
        identity: daemon.cache,
        attestor: workloadAttestor,
        log: log.child({ component: 'workload-api' }),
      })
      log.info({ socket: socketPath, spiffeId: daemon.spiffeId }, 'Sigil agent serving the Workload API')
      let dataPlane: DataPlane | undefined
      if (proxyConfig) {
        // Listen once the first entries have their SVIDs, so the first connections are identified (a
        // server that is slow to answer delays the proxy by at most 10 s; it then starts regardless).
        await Promise.race([daemon.whenSynced(), new Promise((r) => setTimeout(r, 10_000).unref())])
        dataPlane = await startDataPlane({
          agent: daemon,
          config: proxyConfig,
          attestor: workloadAttestor,
          log: log.child({ component: 'proxy' }),
        })
        const a = dataPlane.addresses
        log.info(
          {
            mesh: a.mesh && formatHostPort(a.mesh),
            upstreams: Object.fromEntries(
              Object.entries(a.upstreams).map(([k, v]) => [k, formatHostPort(v)]),
            ),
            egress: a.egress && formatHostPort(a.egress),
            transparent: a.transparent && formatHostPort(a.transparent),
          },
          'Sigil agent proxy listening',
        )
      }
      const stop = async (signal: string) => {
        log.info({ signal }, 'agent shutting down')
        await dataPlane?.close()
        await api.close()
        await daemon.close()
        process.exit(0)
      }
      process.once('SIGTERM', () => void stop('SIGTERM'))
      process.once('SIGINT', () => void stop('SIGINT'))
    })
}
