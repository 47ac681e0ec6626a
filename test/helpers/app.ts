// Builds the app in-process on an in-memory SQLite store, with a bootstrap admin token, for inject() tests.

import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Services } from '../../services/api/types.ts'
import { buildApp } from '../../services/app.ts'
import { createNodeAttestorRegistry } from '../../services/attestation/node/registry.ts'
import { LocalKeyManager } from '../../services/authority/key-manager.ts'
import { issueServerTls, loadServiceCa } from '../../services/authority/service-ca.ts'
import { type Clock, systemClock } from '../../services/clock.ts'
import { defaults, type ServerConfig } from '../../services/config.ts'
import { createServices, type ServiceOptions } from '../../services/context.ts'
import { SqliteStore } from '../../services/store/sqlite.ts'
import type { Store } from '../../services/store/store.ts'

export interface TestApp {
  app: FastifyInstance
  services: Services
  adminToken: string
  store: Store
  /** With `https: true`: the listening server's URL and the CA that signed its certificate. */
  url?: string
  caPem?: string
  /** inject() with the admin token (or `token`) and a JSON body. */
  call(
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT',
    url: string,
    body?: unknown,
    token?: string | null,
  ): Promise<{ statusCode: number; json: any; body: string; headers: Record<string, unknown> }>
}

interface Teardown {
  teardown(fn: () => unknown): void
}

export async function buildTestApp(
  t: Teardown,
  opts: {
    store?: Store
    clock?: Clock
    rateLimit?: { max: number; windowSeconds: number }
    signingWorkers?: number
    nodeAttestors?: ServiceOptions['nodeAttestors']
    flows?: ServerConfig['flows']
    /** Federation settings (the served refresh hint); the defaults when absent. */
    federation?: ServerConfig['federation']
    /** The services' log (authority, federation); silent by default. */
    log?: ServiceOptions['log']
    /** Console sessions and single sign-on (no SSO by default). */
    console?: ServerConfig['console']
    /** Serve the console from this directory instead of services/console/dist. */
    consoleDist?: string
    /** Listen on a loopback port over HTTPS (for agents' mTLS); the node attestor registry by default. */
    https?: boolean
  } = {},
): Promise<TestApp> {
  const store = opts.store ?? new SqliteStore(':memory:')
  await store.migrate()
  const keys = new LocalKeyManager(randomBytes(32))
  const registry = opts.https && !opts.nodeAttestors ? createNodeAttestorRegistry() : undefined
  const nodeAttestors = opts.nodeAttestors ?? (registry && ((name: string) => registry.get(name)))
  const services = createServices({
    config: {
      intermediateTtl: defaults.intermediateTtl,
      jwtKeyTtl: defaults.jwtKeyTtl,
      signingWorkers: opts.signingWorkers ?? 0,
      maxBatch: defaults.maxBatch,
      trustDomainDefaults: { ...defaults.trustDomainDefaults },
      ...(opts.flows ? { flows: opts.flows } : {}),
      ...(opts.federation ? { federation: opts.federation } : {}),
      ...(opts.console ? { console: opts.console } : {}),
    },
    store,
    keys,
    clock: opts.clock ?? systemClock,
    ...(opts.log ? { log: opts.log } : {}),
    ...(nodeAttestors ? { nodeAttestors } : {}),
  })
  let tls: { key: string; cert: string } | undefined
  let caPem: string | undefined
  if (opts.https) {
    const ca = await loadServiceCa(store, keys)
    const issued = await issueServerTls(ca, ['127.0.0.1'])
    tls = { key: issued.keyPem, cert: issued.certPem }
    caPem = ca.certPem
  }
  const app = await buildApp({
    services,
    rateLimit: opts.rateLimit ?? { max: 100_000, windowSeconds: 10 },
    logger: process.env.SIGIL_TEST_LOG ? { level: 'info' } : false,
    bodyLimit: defaults.bodyLimit,
    ...(tls ? { https: tls } : {}),
    ...(opts.consoleDist ? { consoleDist: opts.consoleDist } : {}),
  })
  let url: string | undefined
  if (opts.https) {
    await app.listen({ host: '127.0.0.1', port: 0 })
    url = `https://127.0.0.1:${(app.server.address() as { port: number }).port}`
  }
  const { token: adminToken } = await services.apiTokens.create(undefined, {
    name: 'test-admin',
    grants: [{ trustDomain: '*', role: 'admin' }],
  })
  t.teardown(async () => {
    await app.close()
    await services.authority.close()
    await store.close()
  })
  return {
    app,
    services,
    adminToken,
    store,
    ...(url ? { url, caPem } : {}),
    async call(method, url, body, token) {
      const headers: Record<string, string> = {}
      const bearer = token === undefined ? adminToken : token
      if (bearer !== null) headers.authorization = `Bearer ${bearer}`
      const res = await app.inject({
        method,
        url,
        headers,
        ...(body === undefined ? {} : { payload: body as object }),
      })
      let json: unknown
      try {
        json = res.body ? JSON.parse(res.body) : undefined
      } catch {
        json = undefined
      }
      return { statusCode: res.statusCode, json, body: res.body, headers: res.headers }
    },
  }
}
