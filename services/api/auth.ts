// Authentication, per-trust-domain authorization and the audit trail, as route hooks: a route
// declares `config.auth` and (when it mutates) `config.action`; nothing is reachable by forgetting.

import { timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { canSee, isInstallationAdmin, type Principal, roleOn } from '../auth/api-tokens.ts'
import { readCookie, SESSION_COOKIE } from '../console/cookies.ts'
import { quote, SigilError } from '../errors.ts'
import { TrustDomainService } from '../tenancy/trust-domains.ts'
import { peerChain } from './agent-auth.ts'
import { toSigilError } from './error-handler.ts'

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (!header) return undefined
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
  return match ? match[1] : ''
}

/** The header a console page echoes its session's CSRF secret in (from GET /v1/session). */
export const CSRF_HEADER = 'x-sigil-csrf'

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * A bearer token when one is sent; otherwise the console's session cookie, whose mutating requests must
 * carry the session's CSRF secret (a cross-site page can make the browser send the cookie, never the
 * header). Bearer requests need no CSRF token: browsers never attach an Authorization header by themselves.
 */
async function authenticate(request: FastifyRequest): Promise<Principal> {
  const token = bearer(request)
  const cookie = token === undefined ? readCookie(request.headers.cookie, SESSION_COOKIE) : undefined
  if (cookie === undefined) return request.server.sigil.apiTokens.authenticate(token)
  const session = await request.server.sigil.console.authenticate(cookie)
  if (MUTATING.has(request.method)) {
    const sent = request.headers[CSRF_HEADER]
    if (typeof sent !== 'string' || !sameSecret(sent, session.data.csrf)) {
      throw new SigilError(
        'CSRF_TOKEN_INVALID',
        `a change made with a console session must carry the session's CSRF token in the ${CSRF_HEADER} header (from GET /v1/session); reload the console`,
      )
    }
  }
  return session.principal
}

function trustDomainParam(request: FastifyRequest): string | undefined {
  return (request.params as { trustDomain?: string } | undefined)?.trustDomain
}

function who(principal: Principal): string {
  return `${principal.actor ? 'user' : 'token'} ${quote(principal.name)}`
}

async function authorize(request: FastifyRequest): Promise<void> {
  const requirement = request.routeOptions.config.auth
  if (!requirement) throw new Error(`route ${request.routeOptions.url} declares no auth requirement`)
  if (requirement.kind === 'none') return
  if (requirement.kind === 'agent') {
    request.agent = await request.server.sigil.agents.authenticate(peerChain(request))
    return
  }
  const principal = await authenticate(request)
  request.principal = principal
  if (requirement.kind === 'authenticated') return
  if (requirement.kind === 'installation-admin') {
    if (!isInstallationAdmin(principal)) {
      throw new SigilError(
        'FORBIDDEN',
        `${who(principal)} is not an installation admin (an admin grant on "*")`,
      )
    }
    return
  }
  const td = trustDomainParam(request) ?? ''
  TrustDomainService.validateName(td)
  const role = roleOn(principal, td)
  if (!role || (requirement.role === 'admin' && role !== 'admin')) {
    throw new SigilError(
      'FORBIDDEN',
      `${who(principal)} has no ${requirement.role} role on trust domain ${quote(td)}`,
    )
  }
}

/** Who made a request, as the audit log and policy versions name them. */
export function actorOf(request: FastifyRequest): string {
  const principal = request.principal
  if (principal) return principal.actor ?? `token:${principal.tokenId} (${principal.name})`
  return request.agent ? `agent:${request.agent.spiffeId}` : 'anonymous'
}

async function audit(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const action = request.routeOptions.config.action
  if (!action || !MUTATING.has(request.method)) return
  const principal = request.principal
  const field = request.routeOptions.config.auditTrustDomainField
  const created =
    field && reply.statusCode < 400 ? (request.body as Record<string, unknown>)[field] : undefined
  const td =
    trustDomainParam(request) ??
    request.agent?.trustDomain ??
    (typeof created === 'string' ? created : undefined)
  // Attempts on a trust domain the caller cannot see go to the installation log, so one tenant's
  // admins never see another tenant's token names.
  const installation = request.routeOptions.config.auditInInstallationLog === true
  const visible = principal
    ? canSee(principal, td ?? '')
    : request.agent !== undefined || typeof created === 'string'
  const auditDomain = td && visible && !installation ? td : ''
  const statusCode = reply.statusCode
  const record: Parameters<typeof request.server.sigil.audit.record>[0] = {
    trustDomain: auditDomain,
    at: request.server.sigil.clock.now(),
    actor: actorOf(request),
    action,
    target: request.url.split('?')[0]!.slice(0, 512),
    result: statusCode < 400 ? 'ok' : 'error',
    status: statusCode,
    requestId: String(request.id),
  }
  const code = (reply as FastifyReply & { sigilErrorCode?: string }).sigilErrorCode
  if (code) record.code = code
  await request.server.sigil.audit.record(record)
}

async function authPlugin(fastify: FastifyInstance): Promise<void> {
  fastify.decorateRequest('principal', undefined)
  fastify.decorateRequest('agent', undefined)
  fastify.addHook('onRequest', async (request) => {
    if (!request.routeOptions.url) return // 404: the not-found handler answers
    await authorize(request)
  })
  fastify.addHook('onError', async (_request, reply, error) => {
    const known = toSigilError(error)
    ;(reply as FastifyReply & { sigilErrorCode?: string }).sigilErrorCode = known?.code ?? 'INTERNAL'
  })
  // onSend runs before the response leaves: an acknowledged change always has its audit record.
  fastify.addHook('onSend', async (request, reply, payload) => {
    await audit(request, reply)
    return payload
  })
  fastify.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched'
    const metrics = request.server.sigil.metrics
    metrics.httpRequests.inc({ route, method: request.method, status: String(reply.statusCode) })
    metrics.httpDuration.observe({ route, method: request.method }, reply.elapsedTime / 1000)
  })
}

export default fp(authPlugin, { name: 'sigil-auth', dependencies: ['sigil-errors'] })
