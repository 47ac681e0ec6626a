// The CLI's HTTPS client for the /v1 API: trusts the server's CA bundle, sends the bearer token, and
// turns the contract's error shape into an ApiError.

import { existsSync, readFileSync } from 'node:fs'
import https from 'node:https'
import path from 'node:path'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The error's `details`, when the server sent some (POLICY_INVALID: line, column, path). */
    readonly details?: Record<string, unknown>,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

export interface ClientOptions {
  server: string
  token?: string
  caBundle?: string
}

export interface ResolvedClientOptions {
  server: URL
  token?: string
  ca?: string
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1'])

/** Applies the contract's defaults: a local server's token and CA come from ./.sigil (or SIGIL_DATA_DIR). */
export function resolveClientOptions(
  opts: ClientOptions,
  env: Record<string, string | undefined>,
  cwd: string,
): ResolvedClientOptions {
  let server: URL
  try {
    server = new URL(opts.server)
  } catch {
    throw new ApiError(
      0,
      'USAGE',
      `--server ${JSON.stringify(opts.server)} is not a URL; use https://HOST:PORT`,
    )
  }
  if (server.protocol !== 'https:') throw new ApiError(0, 'USAGE', '--server must be an https:// URL')
  // Empty environment variables count as unset.
  const dataDir = path.resolve(cwd, env.SIGIL_DATA_DIR || '.sigil')
  const resolved: ResolvedClientOptions = { server }
  const token = opts.token || env.SIGIL_TOKEN
  const tokenFile = path.join(dataDir, 'admin.token')
  if (token) resolved.token = token
  else if (LOCAL_HOSTS.has(server.hostname) && existsSync(tokenFile))
    resolved.token = readFileSync(tokenFile, 'utf8').trim()
  const explicitCa = opts.caBundle || env.SIGIL_CA_BUNDLE
  const caFile = explicitCa || path.join(dataDir, 'server-ca.pem')
  if (existsSync(caFile)) resolved.ca = readFileSync(caFile, 'utf8')
  else if (opts.caBundle ?? env.SIGIL_CA_BUNDLE)
    throw new ApiError(0, 'USAGE', `CA bundle ${caFile} does not exist`)
  return resolved
}

export class ApiClient {
  readonly #agent: https.Agent
  constructor(readonly opts: ResolvedClientOptions) {
    const agentOpts: https.AgentOptions = { keepAlive: true, minVersion: 'TLSv1.2' }
    if (opts.ca) agentOpts.ca = opts.ca
    this.#agent = new https.Agent(agentOpts)
  }

  close(): void {
    this.#agent.destroy()
  }

  async request<T = unknown>(method: string, pathname: string, body?: unknown): Promise<T> {
    const { status, text, contentType } = await this.raw(method, pathname, body)
    const json = contentType.includes('json') && text ? JSON.parse(text) : undefined
    if (status >= 400) {
      const err = (
        json as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | undefined
      )?.error
      throw new ApiError(
        status,
        err?.code ?? `HTTP_${status}`,
        err?.message ?? text.slice(0, 300),
        err?.details,
      )
    }
    return (json ?? text) as T
  }

  raw(
    method: string,
    pathname: string,
    body?: unknown,
  ): Promise<{ status: number; text: string; contentType: string }> {
    const url = new URL(pathname, this.opts.server)
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`
    if (payload) {
      headers['content-type'] = 'application/json'
      headers['content-length'] = String(payload.length)
    }
    return new Promise((resolve, reject) => {
      const req = https.request(url, { method, headers, agent: this.#agent, timeout: 30_000 }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            text: Buffer.concat(chunks).toString('utf8'),
            contentType: String(res.headers['content-type'] ?? ''),
          }),
        )
        res.on('error', reject)
      })
      req.on('timeout', () => req.destroy(new Error(`no answer from ${url.origin} within 30s`)))
      req.on('error', (err: NodeJS.ErrnoException) => {
        const hint =
          err.code === 'ECONNREFUSED'
            ? `cannot connect to ${url.origin}: is the server running (npm start)? Set --server or SIGIL_SERVER`
            : err.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
                err.code === 'SELF_SIGNED_CERT_IN_CHAIN' ||
                err.code === 'DEPTH_ZERO_SELF_SIGNED_CERT'
              ? `cannot verify ${url.origin}'s certificate: pass --ca-bundle FILE (the server's server-ca.pem) or set SIGIL_CA_BUNDLE`
              : `request to ${url.origin} failed: ${err.message}`
        reject(new ApiError(0, 'CONNECTION_FAILED', hint))
      })
      if (payload) req.write(payload)
      req.end()
    })
  }
}
