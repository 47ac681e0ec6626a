// The agent's side of the tunnel broker (services/broker/broker.ts): it dials out to every configured
// broker with its own SVID, keeps a listen stream open on each (reconnecting with backoff and jitter),
// hands the streams of tunnel connections it serves to the mesh server, and opens tunnel streams for
// local apps. Several brokers behind one name: the agent is connected to all, so any of them can pair
// a connection, and a broker restart costs at most the reconnect time.

import http2 from 'node:http2'
import { isIP } from 'node:net'
import type { Duplex } from 'node:stream'
import tls, { type TLSSocket } from 'node:tls'
import { RELAY_ALPN } from '../../services/broker/broker.ts'
import type { Log } from '../workload/log.ts'
import type { AgentCredentials } from './certificates.ts'
import { formatHostPort, type HostPort } from './config.ts'

export type TunnelOpenResult =
  | { ok: true; stream: TLSSocket }
  | { ok: false; status: number; code: string; reason: string }

/** What the broker is told about a tunnel connection (see services/broker/broker.ts). */
export interface TunnelHeaders {
  flowId?: string
  sourceSpiffeId?: string
  sourceSelectors?: string[]
  /** The tunnel's trust domain, when it is not the agent's own (a federated one). */
  trustDomain?: string
}

export interface BrokerClientOptions {
  servers: HostPort[]
  /** The trust service's CA: brokers present certificates from it. */
  caPem: string
  credentials(): AgentCredentials | undefined
  /** A connection for a tunnel this agent serves arrived: the stream carries the far agent's TLS. */
  onIncoming(stream: Duplex, info: { tunnel: string; service: string }): void
  log: Log
}

interface Link {
  server: HostPort
  session?: http2.ClientHttp2Session
  ready: boolean
  backoff: number
  timer?: NodeJS.Timeout
  lastWarn: number
}

const BACKOFF_MIN = 250
const BACKOFF_MAX = 10_000
const SETTINGS: http2.Settings = { initialWindowSize: 8 << 20, enablePush: false }

export class BrokerClient {
  readonly #opts: BrokerClientOptions
  readonly #links: Link[]
  #closed = false

  constructor(opts: BrokerClientOptions) {
    this.#opts = opts
    this.#links = opts.servers.map((server) => ({ server, ready: false, backoff: BACKOFF_MIN, lastWarn: 0 }))
  }

  start(): void {
    for (const link of this.#links) this.#connect(link)
  }

  close(): void {
    this.#closed = true
    for (const link of this.#links) {
      if (link.timer) clearTimeout(link.timer)
      link.session?.destroy()
    }
  }

  /** Brokers this agent is connected to right now. */
  connected(): HostPort[] {
    return this.#links.filter((l) => l.ready).map((l) => l.server)
  }

  /** Opens a stream for one tunnel connection through the first broker that can pair it. */
  async open(tunnel: string, headers: TunnelHeaders = {}): Promise<TunnelOpenResult> {
    const ready = this.#links.filter((l) => l.ready && l.session && !l.session.destroyed)
    if (ready.length === 0) {
      return {
        ok: false,
        status: 503,
        code: 'BROKER_UNREACHABLE',
        reason: `not connected to any broker (${this.#links.map((l) => formatHostPort(l.server)).join(', ')})`,
      }
    }
    let last: TunnelOpenResult | undefined
    for (const link of ready) {
      last = await this.#relay(link.server, { op: 'tunnel', name: tunnel, ...headers })
      // Another broker may have the serving agent when this one does not.
      if (last.ok || (last.status !== 503 && last.status !== 502 && last.status !== 504)) return last
    }
    return last!
  }

  /**
   * One relay connection to a broker: TLS of its own, an opening line, the broker's answer line. The
   * socket it resolves with is paused, so nothing is read before its new owner listens.
   */
  #relay(server: HostPort, opening: Record<string, unknown>): Promise<TunnelOpenResult> {
    const creds = this.#opts.credentials()
    if (!creds)
      return Promise.resolve({
        ok: false,
        status: 503,
        code: 'AGENT_NOT_ATTESTED',
        reason: 'this agent has no SVID yet',
      })
    return new Promise((resolve) => {
      const socket = tls.connect({
        host: server.host,
        port: server.port,
        ...(isIP(server.host) ? {} : { servername: server.host }),
        ca: this.#opts.caPem,
        cert: creds.certChainPem,
        key: creds.keyPem,
        minVersion: 'TLSv1.2',
        ALPNProtocols: [RELAY_ALPN],
      })
      socket.setNoDelay(true)
      let settled = false
      const fail = (status: number, code: string, reason: string) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        socket.destroy()
        resolve({ ok: false, status, code, reason })
      }
      const timer = setTimeout(
        () => fail(504, 'BROKER_TIMEOUT', 'the broker did not answer within 15 s'),
        15_000,
      )
      timer.unref()
      socket.once('error', (err) =>
        fail(502, 'BROKER_FAILED', `the broker connection failed: ${err.message}`),
      )
      socket.once('close', () =>
        fail(502, 'BROKER_FAILED', 'the broker closed the connection before it answered'),
      )
      socket.once('secureConnect', () => socket.write(`${JSON.stringify(opening)}\n`))
      let buffered = Buffer.alloc(0)
      const onData = (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk])
        const nl = buffered.indexOf(10)
        if (nl < 0) {
          if (buffered.length > 16_384) fail(502, 'BROKER_FAILED', 'the broker answered an overlong line')
          return
        }
        socket.off('data', onData)
        socket.pause()
        const rest = buffered.subarray(nl + 1)
        if (rest.length) socket.unshift(rest)
        let answer: { status?: number; code?: string; reason?: string }
        try {
          answer = JSON.parse(buffered.subarray(0, nl).toString('utf8'))
        } catch {
          fail(502, 'BROKER_FAILED', 'the broker answered something that is not JSON')
          return
        }
        if (answer.status === 200) {
          settled = true
          clearTimeout(timer)
          socket.removeAllListeners('close')
          socket.removeAllListeners('error')
          socket.on('error', () => {})
          resolve({ ok: true, stream: socket })
          return
        }
        fail(
          answer.status ?? 502,
          answer.code ?? 'BROKER_FAILED',
          answer.reason ?? `the broker answered ${answer.status}`,
        )
      }
      socket.on('data', onData)
    })
  }

  #retry(link: Link): void {
    link.ready = false
    if (this.#closed || link.timer) return
    const wait = link.backoff * (0.8 + 0.4 * Math.random())
    link.backoff = Math.min(link.backoff * 2, BACKOFF_MAX)
    link.timer = setTimeout(() => {
      link.timer = undefined
      this.#connect(link)
    }, wait)
    link.timer.unref()
  }

  #connect(link: Link): void {
    if (this.#closed) return
    const creds = this.#opts.credentials()
    if (!creds) {
      this.#retry(link)
      return
    }
    const where = formatHostPort(link.server)
    const session = http2.connect(`https://${where}`, {
      ca: this.#opts.caPem,
      cert: creds.certChainPem,
      key: creds.keyPem,
      minVersion: 'TLSv1.2',
      settings: SETTINGS,
      maxSessionMemory: 256,
    })
    link.session = session
    session.on('error', (err) => {
      // Said once, then at most once a minute while it lasts: an operator must see why no tunnel works.
      const now = Date.now()
      if (now - link.lastWarn < 60_000) return
      link.lastWarn = now
      this.#opts.log.warn({ broker: where, err: err.message }, 'cannot connect to the broker; retrying')
    })
    session.on('close', () => {
      if (link.session !== session) return
      if (link.ready) this.#opts.log.warn({ broker: where }, 'lost the broker; reconnecting')
      this.#retry(link)
    })
    session.once('connect', () => {
      session.setLocalWindowSize(32 << 20)
      const listen = session.request(
        { ':method': 'POST', ':path': '/v1/broker/listen' },
        { endStream: false },
      )
      listen.on('error', () => {})
      listen.once('response', (h) => {
        if (Number(h[':status']) !== 200) {
          this.#opts.log.warn({ broker: where, status: h[':status'] }, 'the broker refused this agent')
          session.close()
          return
        }
        link.ready = true
        link.backoff = BACKOFF_MIN
        link.lastWarn = 0
        this.#opts.log.info({ broker: where }, 'connected to the broker')
      })
      let buffered = ''
      listen.setEncoding('utf8')
      listen.on('data', (chunk: string) => {
        buffered += chunk
        let nl = buffered.indexOf('\n')
        while (nl >= 0) {
          const line = buffered.slice(0, nl)
          buffered = buffered.slice(nl + 1)
          this.#onEvent(link, line)
          nl = buffered.indexOf('\n')
        }
        if (buffered.length > 65536) buffered = ''
      })
      listen.on('close', () => {
        if (link.session === session) session.close()
      })
    })
  }

  #onEvent(link: Link, line: string): void {
    let event: { type?: string; id?: string; tunnel?: string; service?: string }
    try {
      event = JSON.parse(line)
    } catch {
      return
    }
    if (event.type !== 'dial' || !event.id || !/^[0-9a-f-]{36}$/.test(event.id)) return
    void this.#relay(link.server, { op: 'accept', id: event.id }).then((r) => {
      if (r.ok) this.#opts.onIncoming(r.stream, { tunnel: event.tunnel ?? '', service: event.service ?? '' })
      else
        this.#opts.log.warn({ tunnel: event.tunnel, err: r.reason }, 'could not accept a tunnel connection')
    })
  }
}
