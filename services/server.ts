// Process start-up only: configuration, logger, store, keys, HTTPS, listen, rotation timer, and a
// graceful close. Everything else lives in the domain folders.

import { mkdirSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Services } from './api/types.ts'
import { agentListenerOptions, buildApp } from './app.ts'
import { createNodeAttestorRegistry } from './attestation/node/registry.ts'
import { bootstrapAdminToken } from './auth/bootstrap.ts'
import { LocalKeyManager, loadKek } from './authority/key-manager.ts'
import { issueServerTls, loadServiceCa } from './authority/service-ca.ts'
import { startBroker } from './broker/start.ts'
import { systemClock } from './clock.ts'
import type { ServerConfig } from './config.ts'
import { createServices } from './context.ts'
import { FederationRefresher } from './federation/refresher.ts'
import { createLogger } from './observability/logger.ts'
import { openStore } from './store/open.ts'

export interface RunningServer {
  url: string
  app: FastifyInstance
  services: Services
  /** The embedded tunnel broker's address, when broker.listen is set. */
  broker?: { host: string; port: number }
  close(): Promise<void>
}

export async function startServer(
  config: ServerConfig,
  log: Logger = createLogger(config.logLevel),
): Promise<RunningServer> {
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
  const store = await openStore(config.store, { dataDir: config.dataDir })
  const keys = new LocalKeyManager(loadKek(config.dataDir, config.kek))
  const nodeAttestors = createNodeAttestorRegistry()
  const services = createServices({
    config,
    store,
    keys,
    clock: systemClock,
    log: log.child({ component: 'authority' }),
    federationLog: log.child({ component: 'federation' }),
    processMetrics: true,
    nodeAttestors: (name) => nodeAttestors.get(name),
  })

  const bootstrap = await bootstrapAdminToken(store, services.apiTokens, config.dataDir)
  if (bootstrap.created)
    log.info({ file: bootstrap.file }, 'bootstrap admin token created (the file holds it; keep it secret)')
  else if (!bootstrap.present)
    log.info('bootstrap admin token was created earlier, by this or another server sharing the store')

  const serviceCa = await loadServiceCa(store, keys)
  const caFile = path.join(config.dataDir, 'server-ca.pem')
  writeFileSync(caFile, serviceCa.certPem)
  const tls = await issueServerTls(serviceCa, [config.listen.host, ...config.serverNames])

  const app = await buildApp({
    services,
    rateLimit: config.rateLimit,
    bodyLimit: config.bodyLimit,
    loggerInstance: log as never,
    https: { key: tls.keyPem, cert: tls.certPem },
    separateAgentListener: config.agentListen !== undefined,
  })
  const address = await app.listen({ host: config.listen.host, port: config.listen.port })
  const port = (app.server.address() as { port: number }).port
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host
  const url = `https://${host}:${port}`
  log.info(
    { url, address, store: store.kind, dataDir: config.dataDir, serverCa: caFile },
    'Sigil trust service listening',
  )

  // Agents' own listener: the same app, a server that requests client certificates.
  let agentServer: https.Server | undefined
  if (config.agentListen) {
    const { host: agentHost, port: agentPort } = config.agentListen
    const tlsAgents = await issueServerTls(serviceCa, [agentHost, ...config.serverNames])
    agentServer = https.createServer(
      agentListenerOptions({ key: tlsAgents.keyPem, cert: tlsAgents.certPem }),
      (req, res) => app.routing(req, res),
    )
    await new Promise<void>((resolve, reject) => {
      agentServer!.once('error', reject)
      agentServer!.listen(agentPort, agentHost, () => resolve())
    })
    const bound = (agentServer.address() as { port: number }).port
    log.info(
      { agents: `https://${agentHost.includes(':') ? `[${agentHost}]` : agentHost}:${bound}` },
      'Sigil agent listener (agents connect here; the main listener requests no client certificate)',
    )
  }

  const broker = config.broker
    ? await startBroker(services, {
        listen: config.broker.listen,
        serviceCa,
        serverNames: config.serverNames,
        log: log.child({ component: 'broker' }) as Logger,
      })
    : undefined

  const timer = setInterval(() => {
    services.authority.tick().catch((err) => log.error({ err }, 'CA rotation check failed'))
  }, 30_000)
  timer.unref()

  // Foreign bundles are refreshed in every replica; the store keeps the writes idempotent.
  const refresher = new FederationRefresher({
    store,
    federation: services.federation,
    clock: systemClock,
    log: log.child({ component: 'federation' }),
  })
  refresher.start()

  let closing: Promise<void> | undefined
  return {
    url,
    app,
    services,
    ...(broker ? { broker: { host: broker.host, port: broker.port } } : {}),
    close() {
      closing ??= (async () => {
        clearInterval(timer)
        await refresher.close()
        await broker?.close()
        await new Promise<void>((resolve) => (agentServer ? agentServer.close(() => resolve()) : resolve()))
        await app.close()
        await services.authority.close()
        await store.close()
      })()
      return closing
    },
  }
}
