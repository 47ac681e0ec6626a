// Kubernetes TokenReview: asks the cluster's API server whether a service account token is still good
// (a bound token dies with its pod, which a signature check alone cannot see).

import { request } from 'node:https'
import { failed, quote, unavailable } from '../errors.ts'

export interface TokenReviewConfig {
  apiServer: string
  caPem: string
  bearerToken: string
}

export interface TokenReviewUser {
  username: string
  extra: Record<string, string[]>
}

const TIMEOUT_MS = 5_000
const MAX_BYTES = 1024 * 1024

function post(
  url: URL,
  caPem: string,
  bearer: string,
  body: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca: caPem,
        timeout: TIMEOUT_MS,
        headers: {
          authorization: `Bearer ${bearer}`,
          'content-type': 'application/json',
          accept: 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > MAX_BYTES) req.destroy(new Error(`response larger than ${MAX_BYTES} bytes`))
          else chunks.push(chunk)
        })
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        )
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000}s`)))
    req.on('error', reject)
    req.end(body)
  })
}

function field(obj: unknown, key: string): unknown {
  return typeof obj === 'object' && obj !== null ? (obj as Record<string, unknown>)[key] : undefined
}

export async function reviewToken(
  config: TokenReviewConfig,
  token: string,
  audience: string,
  label: string,
): Promise<TokenReviewUser> {
  const url = new URL('/apis/authentication.k8s.io/v1/tokenreviews', config.apiServer)
  const body = JSON.stringify({
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenReview',
    spec: { token, audiences: [audience] },
  })
  let res: { status: number; text: string }
  try {
    res = await post(url, config.caPem, config.bearerToken, body)
  } catch (err) {
    throw unavailable(
      `k8s_psat: ${label}: TokenReview POST ${url.href} failed (${(err as Error).message})`,
      err,
    )
  }
  if (res.status === 401 || res.status === 403) {
    throw unavailable(
      `k8s_psat: ${label}: the API server refused the TokenReview (HTTP ${res.status}); tokenReview.bearerToken needs permission to create tokenreviews`,
    )
  }
  if (res.status !== 200 && res.status !== 201) {
    throw unavailable(`k8s_psat: ${label}: TokenReview answered HTTP ${res.status}`)
  }
  let review: unknown
  try {
    review = JSON.parse(res.text)
  } catch (err) {
    throw unavailable(`k8s_psat: ${label}: TokenReview answer is not JSON`, err)
  }
  const status = field(review, 'status')
  if (field(status, 'authenticated') !== true) {
    const error = field(status, 'error')
    const why = typeof error === 'string' && error ? ` (${quote(error, 200)})` : ''
    throw failed(`k8s_psat: ${label}: the API server does not accept the token${why}; was its pod deleted?`)
  }
  const audiences = field(status, 'audiences')
  if (Array.isArray(audiences) && !audiences.includes(audience)) {
    throw failed(`k8s_psat: ${label}: TokenReview did not confirm the audience ${quote(audience)}`)
  }
  const user = field(status, 'user')
  const username = field(user, 'username')
  if (typeof username !== 'string') throw unavailable(`k8s_psat: ${label}: TokenReview answer names no user`)
  const extra: Record<string, string[]> = {}
  const rawExtra = field(user, 'extra')
  if (rawExtra && typeof rawExtra === 'object') {
    for (const [k, v] of Object.entries(rawExtra)) {
      if (Array.isArray(v)) extra[k] = v.filter((s): s is string => typeof s === 'string')
    }
  }
  return { username, extra }
}
