// A real agent in the test process, attested with a fresh join token, with its proxy running from a
// proxy configuration (YAML). The proxy tests start their agents through this.

import { Agent } from '../../agents/daemon/agent.ts'
import { type DataPlane, startDataPlane } from '../../agents/daemon/data-plane.ts'
import { parseProxyConfig } from '../../agents/proxy/config.ts'
import { createWorkloadAttestor } from '../../agents/workload/attestor.ts'
import type { Log } from '../../agents/workload/log.ts'
import type { ApiClient } from '../../services/cli/client.ts'

export const quietLog: Log & { error(o: object, m: string): void } = { info() {}, warn() {}, error() {} }

export interface ProxyAgent {
  agent: Agent
  plane: DataPlane
}

export async function startProxyAgent(
  t: { teardown(fn: () => unknown): void },
  opts: {
    api: ApiClient
    server: { url: string; caPem: string }
    trustDomain: string
    /** The agent's SPIFFE ID, fixed by its join token. */
    id: string
    proxyYaml: string
    log?: Log
  },
): Promise<ProxyAgent> {
  const { token } = await opts.api.request<{ token: string }>(
    'POST',
    `/v1/trust-domains/${opts.trustDomain}/join-tokens`,
    { spiffeId: opts.id },
  )
  const agent = new Agent({
    server: new URL(opts.server.url),
    trustDomain: opts.trustDomain,
    trustBundlePem: opts.server.caPem,
    attestor: { name: 'join_token', evidence: async () => ({ token }) },
    log: quietLog,
  })
  t.teardown(() => agent.close())
  await agent.start()
  await agent.whenSynced()
  const plane = await startDataPlane({
    agent,
    config: parseProxyConfig(opts.proxyYaml),
    attestor: createWorkloadAttestor(),
    log: opts.log ?? quietLog,
    flowIntervalMs: 100,
  })
  t.teardown(() => plane.close())
  return { agent, plane }
}
