// Wires the proxy (agents/proxy) to a running agent: certificates from its identity cache, the policy
// it is pushed, and flow reports sent back through it. The proxy itself never sees the CA client.

import type { FlowRecord } from '../../services/flows/flow.ts'
import { type PolicySnapshot, policyFromView } from '../../services/policy/view.ts'
import type { CertificateSource } from '../proxy/certificates.ts'
import type { ProxyConfig } from '../proxy/config.ts'
import { FlowReporter } from '../proxy/flow-reporter.ts'
import { PolicyState } from '../proxy/policy-state.ts'
import { NodeProxy, type ProxyAddresses } from '../proxy/proxy.ts'
import type { Log } from '../workload/log.ts'
import type { WorkloadAttestor } from '../workload-api/identity-source.ts'
import type { Agent } from './agent.ts'

export interface DataPlane {
  proxy: NodeProxy
  addresses: ProxyAddresses
  policy: PolicyState
  reporter: FlowReporter
  close(): Promise<void>
}

export function certificateSource(agent: Agent): CertificateSource {
  const cache = agent.cache
  return {
    trustDomain: cache.trustDomain,
    forWorkload: (selectors) => cache.x509Svids(selectors)[0],
    byId: (id) => cache.svidById(id),
    selectorsOf: (id) => cache.selectorsOf(id),
    agent: () => agent.credentials(),
    roots: () => cache.roots(),
    federatedRoots: () => cache.federatedRoots(),
    onChange: (listener) => cache.onChange(listener),
  }
}

export async function startDataPlane(opts: {
  agent: Agent
  config: ProxyConfig
  attestor: WorkloadAttestor
  log: Log
  flowIntervalMs?: number
}): Promise<DataPlane> {
  const { agent, log } = opts
  const policy = new PolicyState()
  const unwatch = agent.onPolicy((view) => {
    try {
      const snapshot = view as PolicySnapshot
      if (policy.set(policyFromView(snapshot), snapshot.version))
        log.info({ version: snapshot.version, mode: snapshot.mode }, 'policy applied')
    } catch (err) {
      // Keep enforcing the previous policy rather than none.
      log.warn({ err: (err as Error).message }, 'the pushed policy is malformed; keeping the previous one')
    }
  })
  const reporter = new FlowReporter({
    send: (flows: FlowRecord[]) => agent.sendFlows(flows),
    log,
    ...(opts.flowIntervalMs ? { intervalMs: opts.flowIntervalMs } : {}),
  })
  const proxy = new NodeProxy({
    config: opts.config,
    trustBundlePem: agent.trustBundlePem,
    certificates: certificateSource(agent),
    attestor: opts.attestor,
    policy,
    report: (record) => {
      if (record.verdict !== 'allowed')
        log.info(
          {
            flow: record.id,
            side: record.side,
            verdict: record.verdict,
            source: record.source.spiffeId ?? record.source.path ?? 'unidentified',
            destination: record.destination.spiffeId ?? record.destination.fqdn,
            port: record.destination.port,
            reason: record.reason,
          },
          record.verdict === 'denied' ? 'connection refused' : 'unidentified connection',
        )
      reporter.report(record)
    },
    agentId: () => agent.spiffeId,
    log,
  })
  const addresses = await proxy.start()
  return {
    proxy,
    addresses,
    policy,
    reporter,
    async close() {
      unwatch()
      await proxy.close()
      await reporter.close()
    },
  }
}
