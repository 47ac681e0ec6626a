// Console sign-in and sessions: GET /v1/session (who am I, my grants, my CSRF token), single sign-on
// (/auth/login -> the provider -> /auth/callback), the API-token sign-in for a fresh installation
// (/auth/token-login), and /auth/logout. Sign-ins and sign-outs go to the installation's audit log.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { isInstallationAdmin } from '../../auth/api-tokens.ts'
import type { ConsoleSession } from '../../console/console-service.ts'
import { clearCookie, LOGIN_COOKIE, readCookie, SESSION_COOKIE, setCookie } from '../../console/cookies.ts'
import { PAGE_CSP, renderPage } from '../../console/pages.ts'
import { SigilError } from '../../errors.ts'
import { toSigilError } from '../error-handler.ts'

const HOST = /^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:]+\](:[0-9]{1,5})?$/

function hostOf(request: FastifyRequest): string {
  const host = request.headers.host ?? ''
  if (!HOST.test(host)) throw new SigilError('BAD_REQUEST', 'the Host header is missing or malformed')
  return host
}

/**
 * Sign-in and sign-out are not protected by a session's CSRF token (there is none yet, or it may have
 * expired), so they refuse requests a browser marks as coming from another site.
 */
function requireSameOrigin(request: FastifyRequest): void {
  const origin = request.headers.origin
  const site = request.headers['sec-fetch-site']
  const foreignOrigin = origin !== undefined && origin !== `https://${hostOf(request)}`
  const foreignSite = typeof site === 'string' && site !== 'same-origin' && site !== 'none'
  if (foreignOrigin || foreignSite) {
    throw new SigilError(
      'CROSS_ORIGIN_REFUSED',
      'sign-in and sign-out are accepted only from the console itself (same origin)',
    )
  }
}

export function sessionView(session: ConsoleSession, oidc: boolean) {
  return {
    authenticated: true as const,
    method: session.data.method,
    user: { name: session.data.name, subject: session.data.subject },
    grants: session.principal.grants,
    installationAdmin: isInstallationAdmin(session.principal),
    csrfToken: session.data.csrf,
    expiresAt: new Date(session.data.expiresAt).toISOString(),
    signIn: { oidc },
  }
}

function sendPage(
  reply: FastifyReply,
  status: number,
  page: { title: string; message: string; code?: string; links: Array<{ href: string; text: string }> },
): FastifyReply {
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('content-security-policy', PAGE_CSP)
    .header('x-frame-options', 'DENY')
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .send(renderPage(page))
}

export default async function sessionRoutes(fastify: FastifyInstance): Promise<void> {
  const { console: consoleService, audit, clock } = fastify.sigil
  const tags = ['console sessions']
  const oidcConfigured = consoleService.oidc !== undefined

  fastify.get(
    '/v1/session',
    {
      config: { auth: { kind: 'none' } },
      schema: {
        tags,
        summary:
          'The console session of this browser: the user, their grants and the CSRF token every change must echo in x-sigil-csrf; or `authenticated: false` and why (SESSION_EXPIRED, SESSION_INVALID), with the sign-in methods on offer',
        security: [],
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store')
      const cookie = readCookie(request.headers.cookie, SESSION_COOKIE)
      const signIn = { oidc: oidcConfigured }
      if (cookie === undefined) return { authenticated: false, signIn }
      try {
        return sessionView(await consoleService.authenticate(cookie), oidcConfigured)
      } catch (err) {
        const known = toSigilError(err)
        if (!known || known.status >= 500) throw err
        reply.header('set-cookie', clearCookie(SESSION_COOKIE))
        return { authenticated: false, signIn, problem: { code: known.code, message: known.message } }
      }
    },
  )

  fastify.post<{ Body: { token: string } }>(
    '/auth/token-login',
    {
      config: { auth: { kind: 'none' }, action: 'console.sign-in' },
      schema: {
        tags,
        summary:
          'Sign in to the console with an API token (the bootstrap admin token of a fresh installation); sets the session cookie',
        security: [],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['token'],
          properties: { token: { type: 'string', minLength: 1, maxLength: 256 } },
        },
      },
    },
    async (request, reply) => {
      requireSameOrigin(request)
      const { cookie, session, maxAgeSeconds } = await consoleService.signInWithToken(request.body.token)
      request.principal = session.principal
      return reply
        .header('set-cookie', setCookie(SESSION_COOKIE, cookie, { maxAgeSeconds, sameSite: 'Strict' }))
        .header('cache-control', 'no-store')
        .send(sessionView(session, oidcConfigured))
    },
  )

  fastify.post(
    '/auth/logout',
    {
      config: { auth: { kind: 'none' }, action: 'console.sign-out' },
      schema: {
        tags,
        summary:
          "Sign out: clears the session cookie; `endSessionUrl` is the provider's sign-out page, when it has one",
        security: [],
      },
    },
    async (request, reply) => {
      requireSameOrigin(request)
      const cookie = readCookie(request.headers.cookie, SESSION_COOKIE)
      let method: string | undefined
      if (cookie !== undefined) {
        try {
          const session = await consoleService.authenticate(cookie)
          request.principal = session.principal
          method = session.data.method
        } catch {
          // An expired or damaged cookie is cleared all the same.
        }
      }
      const endSessionUrl =
        method === 'oidc' && consoleService.oidc
          ? await consoleService.oidc.endSessionUrl(`https://${hostOf(request)}/`)
          : undefined
      return reply
        .header('set-cookie', clearCookie(SESSION_COOKIE))
        .header('cache-control', 'no-store')
        .send({ signedOut: true, ...(endSessionUrl ? { endSessionUrl } : {}) })
    },
  )

  fastify.get<{ Querystring: { prompt?: string } }>(
    '/auth/login',
    {
      config: { auth: { kind: 'none' } },
      schema: {
        tags,
        summary: 'Start a single sign-on: redirects to the identity provider (authorization code with PKCE)',
        security: [],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { prompt: { type: 'string', enum: ['login', 'select_account'] } },
        },
      },
    },
    async (request, reply) => {
      try {
        const redirectUri = consoleService.oidc?.redirectUri ?? `https://${hostOf(request)}/auth/callback`
        const { url, loginCookie, maxAgeSeconds } = await consoleService.beginOidc(
          redirectUri,
          request.query.prompt,
        )
        return reply
          .header('set-cookie', setCookie(LOGIN_COOKIE, loginCookie, { maxAgeSeconds, sameSite: 'Lax' }))
          .header('cache-control', 'no-store')
          .redirect(url.toString(), 303)
      } catch (err) {
        const known = toSigilError(err)
        if (!known) throw err
        return sendPage(reply, known.status, {
          title: 'Single sign-on is not available',
          message: known.message,
          code: known.code,
          links: [{ href: '/', text: 'Back to sign-in' }],
        })
      }
    },
  )

  fastify.get(
    '/auth/callback',
    {
      config: { auth: { kind: 'none' } },
      schema: {
        tags,
        summary: 'Where the identity provider sends the browser back; sets the session cookie',
        security: [],
      },
    },
    async (request, reply) => {
      const url = new URL(request.url, 'https://callback.invalid')
      const loginCookie = readCookie(request.headers.cookie, LOGIN_COOKIE)
      const base = {
        trustDomain: '',
        at: clock.now(),
        action: 'console.sign-in',
        target: '/auth/callback',
        requestId: String(request.id),
      }
      reply.header('set-cookie', clearCookie(LOGIN_COOKIE, 'Lax'))
      try {
        const { cookie, session, maxAgeSeconds } = await consoleService.finishOidc(url, loginCookie)
        await audit.record({
          ...base,
          actor: session.principal.actor ?? session.principal.name,
          result: 'ok',
          status: 303,
        })
        return reply
          .header('set-cookie', [
            clearCookie(LOGIN_COOKIE, 'Lax'),
            setCookie(SESSION_COOKIE, cookie, { maxAgeSeconds, sameSite: 'Strict' }),
          ])
          .header('cache-control', 'no-store')
          .redirect('/', 303)
      } catch (err) {
        const known = toSigilError(err)
        if (!known) throw err
        request.log.info({ code: known.code, err: known.message }, 'console sign-in refused')
        await audit.record({
          ...base,
          actor: 'anonymous',
          result: 'error',
          status: known.status,
          code: known.code,
        })
        const noRole = known.code === 'NO_ROLE'
        // No session was made; signing out means leaving the provider's session, when it offers that.
        const signOut = noRole
          ? ((await consoleService.oidc?.endSessionUrl(`https://${hostOf(request)}/`)) ?? '/')
          : '/'
        return sendPage(reply, known.status, {
          title: noRole ? 'No access' : 'Sign-in failed',
          message: known.message,
          code: known.code,
          links: noRole
            ? [
                { href: signOut, text: 'Sign out' },
                { href: '/auth/login?prompt=login', text: 'Sign in as someone else' },
              ]
            : [{ href: '/', text: 'Back to sign-in' }],
        })
      }
    },
  )
}
