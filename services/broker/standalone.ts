// `sigil broker run`: the broker without the HTTPS API, on the trust service's store and KEK (it needs
// the service CA for its certificate, and the store for agents, tunnels and policies).

import type { Logger } from 'pino'
import { LocalKeyManager, loadKek } from '../authority/key-manager.ts'
import { loadServiceCa } from '../authority/service-ca.ts'
import { systemClock } from '../clock.ts'
import type { ServerConfig } from '../config.ts'
import { createServices } from '../context.ts'
import { openStore } from '../store/open.ts'
import { type StartedBroker, startBroker } from './start.ts'

export async function runStandaloneBroker(
  config: ServerConfig,
  listen: { host: string; port: number },
  log: Logger,
): Promise<StartedBroker> {
  const store = await openStore(config.store, { dataDir: config.dataDir })
  const keys = new LocalKeyManager(loadKek(config.dataDir, config.kek))
  const services = createServices({
    config: { ...config, signingWorkers: 0 },
    store,
    keys,
    clock: systemClock,
  })
  const serviceCa = await loadServiceCa(store, keys)
  const started = await startBroker(services, {
    listen,
    serviceCa,
    serverNames: config.serverNames,
    log: log.child({ component: 'broker' }) as Logger,
  })
  return {
    ...started,
    async close() {
      await started.close()
      await services.authority.close()
      await store.close()
    },
  }
}
