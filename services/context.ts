// Wires the domain services together. Each service gets exactly what it needs (its store, a clock, the
// authority), never the whole context.

import { AgentService } from './agents/agent-service.ts'
import type { Services } from './api/types.ts'
import type { ServerNodeAttestor } from './attestation/node/node-attestor.ts'
import { AuditLog } from './audit/audit-log.ts'
import { ApiTokenService } from './auth/api-tokens.ts'
import { Authority } from './authority/authority.ts'
import type { KeyManager } from './authority/key-manager.ts'
import { SvidService } from './authority/svids.ts'
import { TunnelService } from './broker/tunnels.ts'
import type { Clock } from './clock.ts'
import { defaults, type ServerConfig } from './config.ts'
import { ConsoleService } from './console/console-service.ts'
import { FederationService } from './federation/federation-service.ts'
import type { BundleFetcher } from './federation/fetch-bundle.ts'
import { FlowService } from './flows/flow-service.ts'
import { Metrics } from './observability/metrics.ts'
import { PolicyService } from './policy/policy-service.ts'
import { EntryService } from './registry/entries.ts'
import { JoinTokenService } from './registry/join-tokens.ts'
import type { Store } from './store/store.ts'
import { TrustDomainService } from './tenancy/trust-domains.ts'

export interface ServiceOptions {
  config: Pick<
    ServerConfig,
    'intermediateTtl' | 'jwtKeyTtl' | 'signingWorkers' | 'maxBatch' | 'trustDomainDefaults'
  > & {
    /** Flow retention; the defaults of config.ts when absent. */
    flows?: ServerConfig['flows']
    /** Federation settings; the defaults of config.ts when absent. */
    federation?: ServerConfig['federation']
    /** Console sessions and single sign-on; the defaults of config.ts (no SSO) when absent. */
    console?: ServerConfig['console']
  }
  store: Store
  keys: KeyManager
  clock: Clock
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void }
  processMetrics?: boolean
  /** Looks up a node attestor by name (the attestation registry). */
  nodeAttestors?: (name: string) => ServerNodeAttestor | undefined
  /** The federation service's log (the server names its component); `log` when absent. */
  federationLog?: ServiceOptions['log']
  /** Fetches foreign bundles (a dialing seam for tests); HTTPS by default. */
  fetchBundle?: BundleFetcher
}

export function createServices(opts: ServiceOptions): Services {
  const { store, clock, config } = opts
  const authorityOptions: ConstructorParameters<typeof Authority>[0] = {
    store,
    keys: opts.keys,
    clock,
    intermediateTtl: config.intermediateTtl,
    jwtKeyTtl: config.jwtKeyTtl,
    signingWorkers: config.signingWorkers,
  }
  if (opts.log) authorityOptions.log = opts.log
  const authority = new Authority(authorityOptions)
  const joinTokens = new JoinTokenService(store, clock)
  const flowConfig = config.flows ?? defaults.flows
  const flows = new FlowService(store, clock, {
    retentionMs: flowConfig.retention * 1000,
    maxPerTrustDomain: flowConfig.maxPerTrustDomain,
  })
  const federation = new FederationService(store, clock, {
    refreshHintSeconds: (config.federation ?? defaults.federation).refreshHint,
    ...((opts.federationLog ?? opts.log) ? { log: opts.federationLog ?? opts.log } : {}),
    ...(opts.fetchBundle ? { fetch: opts.fetchBundle } : {}),
  })
  const policies = new PolicyService(store, clock, flows, federation)
  const apiTokens = new ApiTokenService(store, clock)
  const consoleConfig = config.console ?? { sessionTtl: defaults.console.sessionTtl }
  return {
    clock,
    store,
    authority,
    trustDomains: new TrustDomainService(store, authority, clock, config.trustDomainDefaults, policies),
    policies,
    flows,
    federation,
    tunnels: new TunnelService(store, clock),
    entries: new EntryService(store, clock),
    joinTokens,
    agents: new AgentService(
      store,
      authority,
      opts.keys,
      clock,
      joinTokens,
      opts.nodeAttestors ?? (() => undefined),
    ),
    svids: new SvidService(authority, config.maxBatch),
    apiTokens,
    console: new ConsoleService({ store, keys: opts.keys, clock, config: consoleConfig }, apiTokens),
    audit: new AuditLog(store),
    metrics: new Metrics({ processMetrics: opts.processMetrics ?? false }),
    async ready() {
      try {
        await store.ping()
        return true
      } catch {
        return false
      }
    },
  }
}
