// The agent's HTTPS client for the trust service: attestation without credentials, everything else with
// the agent's X509-SVID as the TLS client certificate (held in memory, never written).

import https from 'node:https'

export class ServerError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'ServerError'
  }
}

export interface ClientIdentity {
  certChainPem: string
  keyPem: string
}

export class TrustServiceClient {
  #agent: https.Agent

  constructor(
    readonly server: URL,
    readonly caPem: string,
    identity?: ClientIdentity,
  ) {
    this.#agent = this.#makeAgent(identity)
  }

  /** Swaps the client certificate (after attestation or renewal); open streams keep their connection. */
  setIdentity(identity: ClientIdentity): void {
    const old = this.#agent
    this.#agent = this.#makeAgent(identity)
    setTimeout(() => old.destroy(), 30_000).unref()
  }

  close(): void {
    this.#agent.destroy()
  }

  #makeAgent(identity?: ClientIdentity): https.Agent {
    // No TLS session resumption: a resumed session does not carry the client's certificate chain,
    // which the server needs to verify the agent's SVID.
    const opts: https.AgentOptions = {
      keepAlive: true,
      ca: this.caPem,
      minVersion: 'TLSv1.2',
      maxCachedSessions: 0,
    }
    if (identity) {
      opts.cert = identity.certChainPem
      opts.key = identity.keyPem
    }
    return new https.Agent(opts)
  }

  async post<T>(pathname: string, body: unknown): Promise<{ status: number; body: T }> {
    const payload = Buffer.from(JSON.stringify(body))
    return new Promise((resolve, reject) => {
      const req = https.request(
        new URL(pathname, this.server),
        {
          method: 'POST',
          agent: this.#agent,
          timeout: 30_000,
          headers: { 'content-type': 'application/json', 'content-length': payload.length },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8')
            let json: unknown
            try {
              json = JSON.parse(text)
            } catch {
              json = undefined
            }
            const status = res.statusCode ?? 0
            if (status >= 400) {
              const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error
              reject(
                new ServerError(status, err?.code ?? `HTTP_${status}`, err?.message ?? text.slice(0, 200)),
              )
              return
            }
            resolve({ status, body: json as T })
          })
          res.on('error', reject)
        },
      )
      req.on('timeout', () => req.destroy(new Error('the trust service did not answer within 30s')))
      req.on('error', (err) =>
        reject(err instanceof ServerError ? err : new ServerError(0, 'UNREACHABLE', err.message)),
      )
      req.end(payload)
    })
  }

  /**
   * Opens the server-sent event stream at `pathname`; calls onEvent for each event. Resolves when the
   * stream ends; rejects on a connection failure or an error status.
   */
  stream(
    pathname: string,
    onEvent: (event: string, data: string) => void,
    signal: AbortSignal,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = https.request(new URL(pathname, this.server), {
        method: 'GET',
        agent: this.#agent,
        headers: { accept: 'text/event-stream' },
        signal,
      })
      req.on('response', (res) => {
        if ((res.statusCode ?? 0) >= 400) {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            let code = `HTTP_${res.statusCode}`
            let message = ''
            try {
              const err = JSON.parse(Buffer.concat(chunks).toString()).error
              code = err.code
              message = err.message
            } catch {}
            reject(new ServerError(res.statusCode ?? 0, code, message))
          })
          return
        }
        res.setEncoding('utf8')
        let buffer = ''
        res.on('data', (chunk: string) => {
          buffer += chunk
          let end = buffer.indexOf('\n\n')
          while (end >= 0) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            let event = 'message'
            const data: string[] = []
            for (const line of block.split('\n')) {
              if (line.startsWith('event: ')) event = line.slice(7)
              else if (line.startsWith('data: ')) data.push(line.slice(6))
            }
            if (data.length) onEvent(event, data.join('\n'))
            end = buffer.indexOf('\n\n')
          }
        })
        res.on('end', () => resolve())
        res.on('error', reject)
      })
      req.on('error', (err) => reject(signal.aborted ? err : new ServerError(0, 'UNREACHABLE', err.message)))
      req.end()
    })
  }
}
