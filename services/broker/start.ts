// Starts the tunnel broker on top of the trust service's domain services: agents are authenticated by
// the agent service (the same check as the agent API), tunnels and policies come from the store, and
// relay flow records go to the flow service. Used by `sigil server run` (embedded, when broker.listen
// is set) and by `sigil broker run` (alone, sharing the store, so brokers scale out separately).

import type { Logger } from 'pino'
import type { Services } from '../api/types.ts'
import { issueServerTls } from '../authority/service-ca.ts'
import type { FlowRecord } from '../flows/flow.ts'
import { evaluate } from '../policy/evaluate.ts'
import { Broker } from './broker.ts'

export interface StartedBroker {
  broker: Broker
  host: string
  port: number
  close(): Promise<void>
}

export async function startBroker(
  services: Services,
  opts: {
    listen: { host: string; port: number }
    serviceCa: { certPem: string; key: import('node:crypto').KeyObject }
    serverNames: string[]
    log: Logger
  },
): Promise<StartedBroker> {
  const tls = await issueServerTls(opts.serviceCa, [opts.listen.host, ...opts.serverNames])
  const log = opts.log
  // Relay records are written in small batches, off the relay's path.
  const pending = new Map<string, FlowRecord[]>()
  let flushTimer: NodeJS.Timeout | undefined
  const flush = () => {
    flushTimer = undefined
    for (const [td, records] of pending) {
      pending.delete(td)
      services.flows
        .record(td, records)
        .catch((err) => log.warn({ err, td }, 'storing relay flow records failed'))
    }
  }
  const broker = new Broker({
    host: opts.listen.host,
    port: opts.listen.port,
    certPem: tls.certPem,
    keyPem: tls.keyPem,
    deps: {
      authenticate: async (chain) => {
        const p = await services.agents.authenticate(chain)
        return { trustDomain: p.trustDomain, spiffeId: p.spiffeId }
      },
      tunnel: (td, name) => services.store.getTunnel(td, name),
      federates: async (td, foreign) => (await services.store.getFederation(td, foreign)) !== undefined,
      decide: async (td, flow) => {
        const current = await services.policies.get(await services.trustDomains.get(td))
        return { ...evaluate(current.policy, flow), mode: current.mode, policyVersion: current.version }
      },
      report: (td, record) => {
        const list = pending.get(td) ?? []
        list.push(record)
        pending.set(td, list)
        flushTimer ??= setTimeout(flush, 500)
      },
      log,
    },
  })
  const address = await broker.listen()
  log.info({ broker: `${address.host}:${address.port}` }, 'Sigil tunnel broker listening')
  return {
    broker,
    ...address,
    async close() {
      await broker.close()
      if (flushTimer) clearTimeout(flushTimer)
      flush()
    },
  }
}
