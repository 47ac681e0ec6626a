// The console's only way to the server: the public /v1 API, with the session cookie (sent by the
// browser) and the session's CSRF token on every change. Errors keep the API's code, message and
// details, so forms can say which field is wrong.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

let csrfToken = ''
const sessionProblems = new Set<(e: ApiError) => void>()

export function setCsrfToken(token: string): void {
  csrfToken = token
}

/** Called when the API says the session is gone (expired, forged, token revoked). */
export function onSessionProblem(listener: (e: ApiError) => void): () => void {
  sessionProblems.add(listener)
  return () => sessionProblems.delete(listener)
}

const SESSION_CODES = new Set(['SESSION_EXPIRED', 'SESSION_INVALID', 'UNAUTHENTICATED'])

export async function request<T>(
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
  opts: { raw?: boolean } = {},
): Promise<T> {
  const headers: Record<string, string> = { accept: opts.raw ? '*/*' : 'application/json' }
  if (method !== 'GET') headers['x-sigil-csrf'] = csrfToken
  if (body !== undefined) headers['content-type'] = 'application/json'
  let res: Response
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `the trust service did not answer (${(err as Error).message})`)
  }
  if (res.status === 204) return undefined as T
  const text = await res.text()
  if (!res.ok) {
    let code = 'HTTP_ERROR'
    let message = `the server answered ${res.status}`
    let details: Record<string, unknown> | undefined
    try {
      const parsed = JSON.parse(text) as {
        error?: { code: string; message: string; details?: Record<string, unknown> }
      }
      if (parsed.error) {
        code = parsed.error.code
        message = parsed.error.message
        details = parsed.error.details
      }
    } catch {
      // not JSON: keep the status line
    }
    const error = new ApiError(res.status, code, message, details)
    if (res.status === 401 && SESSION_CODES.has(code)) for (const l of sessionProblems) l(error)
    throw error
  }
  if (opts.raw) return text as T
  return (text ? JSON.parse(text) : undefined) as T
}

export const get = <T>(path: string) => request<T>('GET', path)

/** `/v1/trust-domains/{td}` + rest, with the name escaped. */
export function tdPath(td: string, rest = ''): string {
  return `/v1/trust-domains/${encodeURIComponent(td)}${rest}`
}

// The API's shapes, as far as the console reads them.

export interface Grant {
  trustDomain: string
  role: 'admin' | 'viewer'
}

export interface Session {
  authenticated: true
  method: 'oidc' | 'token'
  user: { name: string; subject: string }
  grants: Grant[]
  installationAdmin: boolean
  csrfToken: string
  expiresAt: string
  signIn: { oidc: boolean }
}

export interface NoSession {
  authenticated: false
  signIn: { oidc: boolean }
  problem?: { code: string; message: string }
}

export interface TrustDomainSettings {
  keyType: string
  caTtl: number
  x509DefaultTtl: number
  x509MaxTtl: number
  jwtDefaultTtl: number
  jwtMaxTtl: number
  policyMode: 'baseline' | 'explicit'
}

export interface TrustDomain {
  name: string
  createdAt: string
  settings: TrustDomainSettings
}

export interface Entry {
  id: string
  spiffeId: string
  parentId: string
  selectors: string[]
  x509Ttl: number
  jwtTtl: number
  dnsNames: string[]
  admin: boolean
  downstream: boolean
  expiresAt: string | null
  createdAt: string
  updatedAt: string
}

export interface Agent {
  spiffeId: string
  attestor: string
  selectors: string[]
  svidExpiresAt: string
  attestedAt: string
  lastSeenAt: string
  banned: boolean
}

export interface JoinToken {
  id: string
  spiffeId: string | null
  expiresAt: string
  createdAt: string
}

export interface AuditEvent {
  seq: number
  at: string
  actor: string
  action: string
  target: string
  result: 'ok' | 'error'
  status: number
  code: string | null
}

export type Verdict = 'allowed' | 'denied' | 'unidentified'

export interface GraphNode {
  id: string
  kind: 'workload' | 'external' | 'unidentified'
  label: string
  spiffeId?: string
  fqdn?: string
}

export interface GraphEdge {
  id: string
  source: string
  target: string
  port: number
  verdicts: Record<Verdict, number>
  flows: number
  bytesOut: number
  bytesIn: number
  rules: string[]
  lastSeen: string
}

export interface FlowView {
  id: string
  side: 'egress' | 'ingress' | 'relay'
  start: string
  durationMs: number
  source: {
    spiffeId?: string
    pid?: number
    path?: string
    sha256?: string
    agent?: string
    selectors?: string[]
  }
  destination: { spiffeId?: string; fqdn?: string; service?: string; port: number; agent?: string }
  bytesOut: number
  bytesIn: number
  verdict: Verdict
  rule?: string
  reason: string
  mode: 'baseline' | 'explicit'
  policyVersion: number
}

export interface PolicyView {
  trustDomain: string
  version: number
  mode: 'baseline' | 'explicit'
  text: string
  updatedAt: string | null
  updatedBy: string | null
}
