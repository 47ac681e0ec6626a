// Requests to a node's metadata service (EC2 IMDS, GCE metadata server, Azure IMDS): bounded in time
// and size, failures reported with the URL (never a token).

import { unavailable } from '../errors.ts'

const MAX_BYTES = 64 * 1024

export async function metadataRequest(
  fetchImpl: typeof fetch,
  url: string,
  what: string,
  init: { method?: string; headers?: Record<string, string>; timeoutMs: number },
): Promise<string> {
  let res: Response
  try {
    res = await fetchImpl(url, {
      method: init.method ?? 'GET',
      headers: init.headers,
      redirect: 'error',
      signal: AbortSignal.timeout(init.timeoutMs),
    })
  } catch (err) {
    throw unavailable(
      `${what}: ${init.method ?? 'GET'} ${url} failed (${(err as Error).message}); is this node on that platform?`,
      err,
    )
  }
  const text = await res.text().catch((err: Error) => {
    throw unavailable(`${what}: reading ${url} failed (${err.message})`, err)
  })
  if (res.status !== 200) throw unavailable(`${what}: ${url} answered HTTP ${res.status}`)
  if (text.length > MAX_BYTES) throw unavailable(`${what}: ${url} answered more than ${MAX_BYTES} bytes`)
  return text
}
