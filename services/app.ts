// The fastify app as a plugin: external plugins first (OpenAPI, rate limits), then Sigil's own
// (errors, auth and audit), then the routes. Tests build it with buildApp() and drive it with inject().

import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import Fastify, { type FastifyInstance, type FastifyServerOptions, LogController } from 'fastify'
import fp from 'fastify-plugin'
import auth from './api/auth.ts'
import errorHandler from './api/error-handler.ts'
import agentApiRoutes from './api/routes/agent-api.ts'
import agentRoutes from './api/routes/agents.ts'
import apiTokenRoutes from './api/routes/api-tokens.ts'
import auditRoutes from './api/routes/audit.ts'
import authorityRoutes from './api/routes/authority.ts'
import bundleRoutes from './api/routes/bundle.ts'
import consoleRoutes from './api/routes/console.ts'
import entryRoutes from './api/routes/entries.ts'
import federationRoutes from './api/routes/federation.ts'
import flowRoutes from './api/routes/flows.ts'
import healthRoutes from './api/routes/health.ts'
import joinTokenRoutes from './api/routes/join-tokens.ts'
import policyRoutes from './api/routes/policy.ts'
import sessionRoutes from './api/routes/sessions.ts'
import svidRoutes from './api/routes/svids.ts'
import trustDomainRoutes from './api/routes/trust-domains.ts'
import tunnelRoutes from './api/routes/tunnels.ts'
import type { Services } from './api/types.ts'
import { SigilError } from './errors.ts'
import { hashToken } from './registry/join-tokens.ts'

export interface AppOptions {
  services: Services
  rateLimit: { max: number; windowSeconds: number }
  /** Where the built console is; services/console/dist by default. */
  consoleDist?: string
}

async function app(fastify: FastifyInstance, opts: AppOptions): Promise<void> {
  fastify.decorate('sigil', opts.services)

  await fastify.register(errorHandler)
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Sigil trust service API',
        version: '1',
        description:
          'Multi-tenant SPIFFE trust service: trust domains, registration entries, join tokens, SVIDs, bundles, network policy, flows, audit. Errors are `{ "error": { "code", "message" } }`.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  })
  await fastify.register(rateLimit, {
    max: opts.rateLimit.max,
    timeWindow: opts.rateLimit.windowSeconds * 1000,
    // Per token when one is sent (hashed: the key lives in memory), else per client address.
    keyGenerator: (request) => {
      const header = request.headers.authorization
      return header ? `t:${hashToken(header).slice(0, 32)}` : `ip:${request.ip}`
    },
    errorResponseBuilder: (_request, context) => {
      const err = new SigilError('RATE_LIMITED', `too many requests; retry after ${context.after}`)
      return Object.assign(err, { statusCode: 429 })
    },
  })
  await fastify.register(auth)

  await fastify.register(healthRoutes)
  await fastify.register(consoleRoutes, opts.consoleDist ? { dist: opts.consoleDist } : {})
  await fastify.register(sessionRoutes)
  await fastify.register(trustDomainRoutes)
  await fastify.register(entryRoutes)
  await fastify.register(joinTokenRoutes)
  await fastify.register(svidRoutes)
  await fastify.register(bundleRoutes)
  await fastify.register(authorityRoutes)
  await fastify.register(auditRoutes)
  await fastify.register(apiTokenRoutes)
  await fastify.register(agentRoutes)
  await fastify.register(policyRoutes)
  await fastify.register(flowRoutes)
  await fastify.register(federationRoutes)
  await fastify.register(tunnelRoutes)
  await fastify.register(agentApiRoutes)
}

export const sigilApp = fp(app, { name: 'sigil-app' })

export interface BuildOptions extends AppOptions {
  bodyLimit: number
  logger?: FastifyServerOptions['logger']
  /** A pino logger the app logs through (the server's), instead of `logger` options. */
  loggerInstance?: FastifyServerOptions['loggerInstance']
  https?: { key: string; cert: string }
  /**
   * Agents have a listener of their own (agentListen): the main port then requests no client
   * certificate, so no browser ever offers a certificate picker on the console.
   */
  separateAgentListener?: boolean
}

/** TLS 1.2+ with forward-secret AEAD suites only (TLS 1.3 suites are all AEAD). */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':')

/** TLS options of the agents' own listener (see BuildOptions.separateAgentListener). */
export function agentListenerOptions(tls: { key: string; cert: string }) {
  return {
    key: tls.key,
    cert: tls.cert,
    minVersion: 'TLSv1.2' as const,
    ciphers: TLS_CIPHERS,
    honorCipherOrder: true,
    requestCert: true,
    rejectUnauthorized: false,
  }
}

export async function buildApp(opts: BuildOptions): Promise<FastifyInstance> {
  const serverOptions: FastifyServerOptions & { https?: object } = {
    ...(opts.loggerInstance ? { loggerInstance: opts.loggerInstance } : { logger: opts.logger ?? false }),
    bodyLimit: opts.bodyLimit,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    requestTimeout: 30_000,
    connectionTimeout: 60_000,
    keepAliveTimeout: 65_000,
    // Unknown fields are refused, never silently dropped; types are never coerced ("5" is not 5).
    ajv: { customOptions: { removeAdditional: false, allErrors: false, coerceTypes: false } },
    genReqId: () => crypto.randomUUID(),
  }
  if (opts.https) {
    serverOptions.https = {
      key: opts.https.key,
      cert: opts.https.cert,
      minVersion: 'TLSv1.2',
      ciphers: TLS_CIPHERS,
      honorCipherOrder: true,
      // Agents authenticate with their X509-SVID; everyone else with a bearer token, so a client
      // certificate is requested but not required, and verified per route (api/agent-auth.ts). With a
      // separate agent listener, only that one requests it (agentListenerOptions).
      requestCert: !opts.separateAgentListener,
      rejectUnauthorized: false,
    }
  }
  const fastify = Fastify(serverOptions) as unknown as FastifyInstance
  await fastify.register(sigilApp, {
    services: opts.services,
    rateLimit: opts.rateLimit,
    ...(opts.consoleDist ? { consoleDist: opts.consoleDist } : {}),
  })
  return fastify
}
