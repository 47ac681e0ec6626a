// The tunnel broker: a relay both agents dial out to, so two workloads in environments that cannot reach
// each other (NAT, no inbound ports, overlapping ranges) still talk with end-to-end mutual TLS.
//
// Agents connect over TLS with their agent SVIDs. The control channel is HTTP/2 (ALPN h2):
//   POST /v1/broker/listen          a long-lived stream: the broker sends NDJSON events to the agent,
//                                   `{"type":"dial","id":…,"tunnel":…,"service":…}` when someone asks
//                                   for a tunnel the agent serves.
// Each tunnel connection is a TLS connection of its own (ALPN sigil-relay), opened with one JSON line:
//   {"op":"tunnel","name":…,"flowId":…,"sourceSpiffeId":…,"sourceSelectors":[…],"trustDomain":…}
//                                   a requesting agent's side, answered {"status":200} once the
//                                   serving agent accepted, then bytes both ways;
//   {"op":"accept","id":…}          the serving agent's side of that connection.
// Refusals answer {"status":4xx|5xx,"code":…,"reason":…} and close. A connection of its own (rather
// than an HTTP/2 stream) lets each agent stack its inner TLS natively on the outer one: three times the
// throughput of TLS over a JS-wrapped stream. The broker pairs the two connections and copies bytes. Inside them the agents run their own TLS with the
// workloads' SVIDs (the mesh protocol, see agents/proxy/mesh.ts), so the broker sees only ciphertext.
// It decides what it can (the tunnel exists in the caller's trust domain, deny rules, unidentified
// sources in explicit mode, a per-agent rate), reports a `relay` flow record per stream, and leaves the
// authoritative decision to the serving agent, which sees the workload's certificate.

import { randomUUID, X509Certificate } from 'node:crypto'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import tls, { type TLSSocket } from 'node:tls'
import type { FlowRecord } from '../flows/flow.ts'
import type { Flow } from '../policy/evaluate.ts'

export interface BrokerTunnel {
  trustDomain: string
  name: string
  /** The identity of the service behind the tunnel. */
  spiffeId: string
  /** The agent that offers it (its SPIFFE ID). */
  agent: string
  /** The service's name in that agent's proxy configuration. */
  service: string
  /** The service's port, when declared: lets the broker apply port-specific rules. */
  port?: number
}

export interface BrokerDecision {
  verdict: 'allowed' | 'denied' | 'unidentified'
  rule?: string
  reason: string
  mode: 'baseline' | 'explicit'
  policyVersion: number
}

export interface BrokerDeps {
  /** The agent behind a client certificate chain (leaf first), or a thrown error. */
  authenticate(chain: X509Certificate[]): Promise<{ trustDomain: string; spiffeId: string }>
  tunnel(trustDomain: string, name: string): Promise<BrokerTunnel | undefined>
  /** Whether `trustDomain` federates with `foreign` (so a foreign agent may use its tunnels). */
  federates(trustDomain: string, foreign: string): Promise<boolean>
  decide(trustDomain: string, flow: Flow): Promise<BrokerDecision>
  report(trustDomain: string, record: FlowRecord): void
  log: {
    info(o: object, m: string): void
    warn(o: object, m: string): void
  }
}

export interface BrokerOptions {
  host: string
  port: number
  certPem: string
  keyPem: string
  deps: BrokerDeps
  /** Tunnel requests per second each agent may make (burst: twice that). Default 50. */
  ratePerAgent?: number
  /** How long a serving agent has to accept a connection. Default 10 s. */
  acceptTimeoutMs?: number
}

interface Principal {
  trustDomain: string
  spiffeId: string
}

/** One side of a relayed connection: its socket, and how to answer its opening line. */
interface RelayEnd {
  socket: TLSSocket
  answer(status: number, code?: string, reason?: string): void
}

interface TunnelRequest {
  name: string
  flowId?: string
  sourceSpiffeId?: string
  sourceSelectors?: string[]
  trustDomain?: string
}

export const RELAY_ALPN = 'sigil-relay'
const MAX_OPENING_LINE = 16 * 1024

interface Pending {
  id: string
  tunnel: BrokerTunnel
  requester: RelayEnd
  principal: Principal
  record: FlowRecord
  timer: NodeJS.Timeout
}

const SETTINGS: http2.Settings = { initialWindowSize: 8 << 20, maxConcurrentStreams: 20_000 }

function header(h: http2.IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name]
  return Array.isArray(v) ? v[0] : v
}

function chainOf(socket: TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = []
  const seen = new Set<string>()
  let cert = socket.getPeerCertificate(true)
  while (cert?.raw && !seen.has(cert.fingerprint256) && chain.length < 8) {
    seen.add(cert.fingerprint256)
    chain.push(new X509Certificate(cert.raw))
    cert = cert.issuerCertificate
  }
  return chain
}

export class Broker {
  readonly #opts: BrokerOptions
  readonly #server: http2.Http2SecureServer
  readonly #tls: tls.Server
  readonly #principals = new WeakMap<http2.ServerHttp2Session, Promise<Principal | undefined>>()
  readonly #listeners = new Map<string, Set<http2.ServerHttp2Stream>>()
  readonly #pending = new Map<string, Pending>()
  readonly #buckets = new Map<string, { tokens: number; at: number }>()
  readonly #sessions = new Set<http2.ServerHttp2Session>()
  readonly #sockets = new Set<TLSSocket>()
  /** Streams being relayed right now (each is one tunnel connection). */
  active = 0

  constructor(opts: BrokerOptions) {
    this.#opts = opts
    // One TLS listener; ALPN sends h2 connections to the HTTP/2 server (which never listens itself) and
    // relay connections to #onRelay.
    this.#tls = tls.createServer({
      cert: opts.certPem,
      key: opts.keyPem,
      ALPNProtocols: ['h2', RELAY_ALPN],
      minVersion: 'TLSv1.2',
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: 10_000,
    })
    this.#server = http2.createSecureServer({
      cert: opts.certPem,
      key: opts.keyPem,
      settings: SETTINGS,
      maxSessionMemory: 256,
    })
    this.#tls.on('secureConnection', (socket: TLSSocket) => {
      if (socket.alpnProtocol === 'h2') this.#server.emit('secureConnection', socket)
      else if (socket.alpnProtocol === RELAY_ALPN) void this.#onRelay(socket)
      else socket.destroy()
    })
    this.#tls.on('tlsClientError', () => {})
    this.#server.on('session', (session) => this.#onSession(session))
    this.#server.on('stream', (stream, headers) => {
      stream.on('error', () => {})
      void this.#onStream(stream, headers)
    })
    this.#server.on('sessionError', () => {})
  }

  async listen(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.#tls.once('error', reject)
      this.#tls.listen(this.#opts.port, this.#opts.host, () => {
        this.#tls.off('error', reject)
        resolve()
      })
    })
    return { host: this.#opts.host, port: (this.#tls.address() as AddressInfo).port }
  }

  /** Agents connected with a listen stream, by SPIFFE ID. */
  connectedAgents(): string[] {
    return [...this.#listeners.entries()].filter(([, s]) => s.size > 0).map(([id]) => id)
  }

  async close(): Promise<void> {
    for (const p of this.#pending.values()) clearTimeout(p.timer)
    for (const s of this.#sessions) s.destroy()
    for (const s of this.#sockets) s.destroy()
    await new Promise<void>((resolve) => this.#tls.close(() => resolve()))
  }

  #onSession(session: http2.ServerHttp2Session): void {
    this.#sessions.add(session)
    session.on('close', () => this.#sessions.delete(session))
    session.on('error', () => {})
    session.setLocalWindowSize(32 << 20)
    const socket = session.socket as TLSSocket
    const principal = this.#opts.deps.authenticate(chainOf(socket)).then(
      (p) => p,
      (err: Error) => {
        this.#opts.deps.log.warn(
          { peer: socket.remoteAddress, err: err.message },
          'broker refused a connection: not an attested agent',
        )
        session.destroy()
        return undefined
      },
    )
    this.#principals.set(session, principal)
  }

  #fail(stream: http2.ServerHttp2Stream, status: number, code: string, reason: string): void {
    if (stream.destroyed || stream.headersSent) return
    stream.respond({
      ':status': status,
      'content-type': 'application/json',
      'sigil-error-code': code,
      'sigil-reason': encodeURIComponent(reason),
    })
    stream.end(JSON.stringify({ error: { code, message: reason } }))
  }

  async #onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
    const principal = await this.#principals.get(stream.session as http2.ServerHttp2Session)
    if (!principal) return void stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)
    const path = header(headers, ':path') ?? ''
    if (header(headers, ':method') !== 'POST') {
      this.#fail(stream, 405, 'METHOD_NOT_ALLOWED', 'the broker takes POST only')
      return
    }
    if (path === '/v1/broker/listen') return this.#listen(stream, principal)
    this.#fail(stream, 404, 'NOT_FOUND', `no broker route ${path.slice(0, 100)}`)
  }

  /** A relay connection: authenticate its agent, read its opening line, then request or accept. */
  async #onRelay(socket: TLSSocket): Promise<void> {
    socket.on('error', () => {})
    socket.setNoDelay(true)
    this.#sockets.add(socket)
    socket.on('close', () => this.#sockets.delete(socket))
    const end: RelayEnd = {
      socket,
      answer: (status, code, reason) => {
        if (socket.destroyed) return
        socket.write(`${JSON.stringify(status === 200 ? { status } : { status, code, reason })}\n`)
        if (status !== 200) socket.end()
      },
    }
    let principal: Principal
    try {
      principal = await this.#opts.deps.authenticate(chainOf(socket))
    } catch (err) {
      this.#opts.deps.log.warn(
        { peer: socket.remoteAddress, err: (err as Error).message },
        'broker refused a relay connection: not an attested agent',
      )
      return void socket.destroy()
    }
    let line: string
    try {
      line = await readLine(socket)
    } catch (err) {
      end.answer(400, 'BAD_REQUEST', (err as Error).message)
      return
    }
    let opening: { op?: unknown; id?: unknown } & Partial<Record<keyof TunnelRequest, unknown>>
    try {
      opening = JSON.parse(line)
    } catch {
      end.answer(400, 'BAD_REQUEST', 'the opening line is not JSON')
      return
    }
    if (opening.op === 'accept' && typeof opening.id === 'string' && /^[0-9a-f-]{36}$/.test(opening.id))
      return this.#accept(end, principal, opening.id)
    const name = opening.name
    if (opening.op !== 'tunnel' || typeof name !== 'string' || !/^[a-z0-9][a-z0-9.-]{0,62}$/.test(name)) {
      end.answer(400, 'BAD_REQUEST', 'expected {"op":"tunnel","name":…} or {"op":"accept","id":…}')
      return
    }
    const str = (v: unknown) => (typeof v === 'string' && v.length <= 2048 ? v : undefined)
    const request: TunnelRequest = { name }
    const flowId = str(opening.flowId)
    const sourceId = str(opening.sourceSpiffeId)
    const owner = str(opening.trustDomain)
    if (flowId) request.flowId = flowId
    if (sourceId) request.sourceSpiffeId = sourceId
    if (owner) request.trustDomain = owner
    if (Array.isArray(opening.sourceSelectors))
      request.sourceSelectors = opening.sourceSelectors
        .filter((x): x is string => typeof x === 'string' && x.length <= 1024)
        .slice(0, 64)
    return this.#request(end, request, principal)
  }

  #listen(stream: http2.ServerHttp2Stream, principal: Principal): void {
    let set = this.#listeners.get(principal.spiffeId)
    if (!set) {
      set = new Set()
      this.#listeners.set(principal.spiffeId, set)
    }
    set.add(stream)
    stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson' })
    stream.write(`${JSON.stringify({ type: 'hello', agent: principal.spiffeId })}\n`)
    const ping = setInterval(() => stream.write('{"type":"ping"}\n'), 15_000)
    ping.unref()
    stream.on('close', () => {
      clearInterval(ping)
      set!.delete(stream)
      if (set!.size === 0) this.#listeners.delete(principal.spiffeId)
    })
    this.#opts.deps.log.info({ agent: principal.spiffeId }, 'agent connected to the broker')
  }

  #take(agent: string): boolean {
    const rate = this.#opts.ratePerAgent ?? 50
    const now = Date.now()
    const b = this.#buckets.get(agent) ?? { tokens: rate * 2, at: now }
    b.tokens = Math.min(rate * 2, b.tokens + ((now - b.at) / 1000) * rate)
    b.at = now
    this.#buckets.set(agent, b)
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  async #request(end: RelayEnd, req: TunnelRequest, principal: Principal): Promise<void> {
    const { deps } = this.#opts
    const { name } = req
    if (!this.#take(principal.spiffeId)) {
      deps.log.warn(
        { agent: principal.spiffeId, tunnel: name },
        'tunnel requests over the rate limit; refused',
      )
      end.answer(429, 'RATE_LIMITED', 'too many tunnel requests from this agent; slow down')
      return
    }
    // A tunnel of another trust domain may be used when that trust domain federates with the caller's.
    const owner = req.trustDomain ?? principal.trustDomain
    if (owner !== principal.trustDomain && !(await deps.federates(owner, principal.trustDomain))) {
      deps.log.warn(
        { agent: principal.spiffeId, tunnel: name, owner },
        'tunnel of a trust domain that does not federate',
      )
      end.answer(
        403,
        'TUNNEL_DENIED',
        `trust domain ${owner} does not federate with ${principal.trustDomain}, so its tunnels are closed to it`,
      )
      return
    }
    const tunnel = await deps.tunnel(owner, name)
    if (!tunnel) {
      deps.log.warn({ agent: principal.spiffeId, tunnel: name }, 'request for a tunnel that does not exist')
      end.answer(404, 'TUNNEL_NOT_FOUND', `trust domain ${owner} has no tunnel ${JSON.stringify(name)}`)
      return
    }
    const sourceId = req.sourceSpiffeId
    const selectors = req.sourceSelectors ?? []
    // The source identity is the requesting agent's word (it holds the workload's SVID and proves it to
    // the far agent inside the relay); it must at least be of the agent's trust domain.
    const identified = sourceId?.startsWith(`spiffe://${principal.trustDomain}/`) ? sourceId : undefined
    const reportTo = tunnel.trustDomain
    const flowId = req.flowId
    const record: FlowRecord = {
      id: flowId && /^[0-9a-f-]{36}$/.test(flowId) ? flowId : randomUUID(),
      side: 'relay',
      start: Date.now(),
      durationMs: 0,
      source: { selectors, agent: principal.spiffeId, ...(identified ? { spiffeId: identified } : {}) },
      destination: {
        spiffeId: tunnel.spiffeId,
        service: tunnel.name,
        port: tunnel.port ?? 0,
        agent: tunnel.agent,
      },
      bytesOut: 0,
      bytesIn: 0,
      verdict: 'allowed',
      reason: '',
      mode: 'baseline',
      policyVersion: 0,
    }
    // The tunnel's trust domain's policy decides (it may name federated identities).
    const decision = await deps.decide(reportTo, {
      source: identified ? { spiffeId: identified, selectors } : { selectors },
      destination: { spiffeId: tunnel.spiffeId },
      port: tunnel.port ?? 0,
    })
    Object.assign(record, { verdict: decision.verdict, reason: decision.reason, mode: decision.mode })
    record.policyVersion = decision.policyVersion
    if (decision.rule) record.rule = decision.rule
    // Without a declared port, "no rule allows this port" is for the serving agent to say.
    const refused =
      decision.verdict === 'denied' &&
      (decision.rule !== undefined || !identified || tunnel.port !== undefined)
    if (refused) {
      deps.log.info(
        { agent: principal.spiffeId, tunnel: name, reason: decision.reason },
        'tunnel refused by policy',
      )
      end.answer(403, 'TUNNEL_DENIED', decision.reason)
      deps.report(reportTo, record)
      return
    }
    const listeners = [...(this.#listeners.get(tunnel.agent) ?? [])].filter((s) => !s.destroyed)
    if (listeners.length === 0) {
      const reason = `the agent offering tunnel ${name} (${tunnel.agent}) is not connected to this broker`
      Object.assign(record, { verdict: 'denied', reason })
      end.answer(503, 'TUNNEL_AGENT_OFFLINE', reason)
      deps.report(reportTo, record)
      return
    }
    const id = randomUUID()
    const timeout = this.#opts.acceptTimeoutMs ?? 10_000
    const pending: Pending = {
      id,
      tunnel,
      requester: end,
      principal,
      record,
      timer: setTimeout(() => {
        this.#pending.delete(id)
        const reason = `the agent offering tunnel ${name} did not answer within ${timeout} ms`
        deps.log.warn({ tunnel: name, agent: tunnel.agent }, reason)
        Object.assign(record, { verdict: 'denied', reason })
        end.answer(504, 'TUNNEL_NO_ANSWER', reason)
        deps.report(reportTo, record)
      }, timeout),
    }
    this.#pending.set(id, pending)
    end.socket.on('close', () => {
      if (this.#pending.get(id) === pending) {
        clearTimeout(pending.timer)
        this.#pending.delete(id)
      }
    })
    const target = listeners[Math.floor(Math.random() * listeners.length)]!
    target.write(`${JSON.stringify({ type: 'dial', id, tunnel: name, service: tunnel.service })}\n`)
  }

  #accept(end: RelayEnd, principal: Principal, id: string): void {
    const pending = this.#pending.get(id)
    if (!pending) {
      end.answer(404, 'TUNNEL_NOT_PENDING', 'no tunnel connection is waiting under this id')
      return
    }
    if (pending.tunnel.agent !== principal.spiffeId) {
      end.answer(403, 'FORBIDDEN', 'only the agent that offers the tunnel may accept it')
      return
    }
    this.#pending.delete(id)
    clearTimeout(pending.timer)
    const { requester, record } = pending
    const a = requester.socket
    const b = end.socket
    if (a.destroyed) {
      b.destroy()
      return
    }
    requester.answer(200)
    end.answer(200)
    this.active++
    let up = 0
    let down = 0
    a.on('data', (d: Buffer) => {
      up += d.length
    })
    b.on('data', (d: Buffer) => {
      down += d.length
    })
    a.pipe(b)
    b.pipe(a)
    let closed = 0
    const done = () => {
      if (++closed < 2) return
      this.active--
      record.durationMs = Date.now() - record.start
      record.bytesOut = up
      record.bytesIn = down
      if (!record.reason) record.reason = 'relayed'
      this.#opts.deps.report(pending.tunnel.trustDomain, record)
    }
    // When one side is gone, the other follows: at once after an error, after a short grace period (to
    // flush what is in flight) after a clean end, so no relay outlives both its agents' interest.
    const follow = (other: TLSSocket) => (hadError: boolean) => {
      done()
      if (other.destroyed) return
      if (hadError) other.destroy()
      else setTimeout(() => other.destroyed || other.destroy(), 2000).unref()
    }
    a.on('close', follow(b))
    b.on('close', follow(a))
  }
}

/** Reads one line (the relay opening), bounded in size and time; leaves the rest in the socket. */
function readLine(socket: TLSSocket, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0)
    const cleanup = () => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('end', onEnd)
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`no opening line within ${timeoutMs} ms`))
    }, timeoutMs)
    const onEnd = () => {
      cleanup()
      reject(new Error('the connection closed before its opening line'))
    }
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      const nl = buffered.indexOf(10)
      if (nl < 0) {
        if (buffered.length > MAX_OPENING_LINE) {
          cleanup()
          reject(new Error(`opening line over ${MAX_OPENING_LINE} bytes`))
        }
        return
      }
      cleanup()
      socket.pause()
      const rest = buffered.subarray(nl + 1)
      if (rest.length) socket.unshift(rest)
      resolve(buffered.subarray(0, nl).toString('utf8'))
    }
    socket.on('data', onData)
    socket.once('end', onEnd)
  })
}
