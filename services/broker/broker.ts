// The tunnel broker: a relay both agents dial out to, so two workloads in environments that cannot reach
// each other (NAT, no inbound ports, overlapping ranges) still talk with end-to-end mutual TLS.
//
// Agents connect over TLS with their agent SVIDs and speak HTTP/2:
//   POST /v1/broker/listen          a long-lived stream: the broker sends NDJSON events to the agent,
//                                   `{"type":"dial","id":…,"tunnel":…,"service":…}` when someone asks
//                                   for a tunnel the agent serves.
//   POST /v1/broker/tunnels/:name   a requesting agent's stream for one tunnel connection; answered 200
//                                   once the serving agent accepted, then bytes both ways.
//   POST /v1/broker/accept/:id      the serving agent's side of that connection.
// The broker pairs the two streams and copies bytes. Inside them the agents run their own TLS with the
// workloads' SVIDs (the mesh protocol, see agents/proxy/mesh.ts), so the broker sees only ciphertext.
// It decides what it can (the tunnel exists in the caller's trust domain, deny rules, unidentified
// sources in explicit mode, a per-agent rate), reports a `relay` flow record per stream, and leaves the
// authoritative decision to the serving agent, which sees the workload's certificate.

import { randomUUID, X509Certificate } from 'node:crypto'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
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

interface Pending {
  id: string
  tunnel: BrokerTunnel
  requester: http2.ServerHttp2Stream
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

function selectorsHeader(v: string | undefined): string[] {
  if (!v || v.length > 8192) return []
  try {
    const list = JSON.parse(v)
    return Array.isArray(list) ? list.filter((s) => typeof s === 'string').slice(0, 64) : []
  } catch {
    return []
  }
}

export class Broker {
  readonly #opts: BrokerOptions
  readonly #server: http2.Http2SecureServer
  readonly #principals = new WeakMap<http2.ServerHttp2Session, Promise<Principal | undefined>>()
  readonly #listeners = new Map<string, Set<http2.ServerHttp2Stream>>()
  readonly #pending = new Map<string, Pending>()
  readonly #buckets = new Map<string, { tokens: number; at: number }>()
  readonly #sessions = new Set<http2.ServerHttp2Session>()
  /** Streams being relayed right now (each is one tunnel connection). */
  active = 0

  constructor(opts: BrokerOptions) {
    this.#opts = opts
    this.#server = http2.createSecureServer({
      cert: opts.certPem,
      key: opts.keyPem,
      ALPNProtocols: ['h2'],
      minVersion: 'TLSv1.2',
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: 10_000,
      settings: SETTINGS,
      maxSessionMemory: 256,
    })
    this.#server.on('session', (session) => this.#onSession(session))
    this.#server.on('stream', (stream, headers) => {
      stream.on('error', () => {})
      void this.#onStream(stream, headers)
    })
    this.#server.on('sessionError', () => {})
  }

  async listen(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(this.#opts.port, this.#opts.host, () => {
        this.#server.off('error', reject)
        resolve()
      })
    })
    return { host: this.#opts.host, port: (this.#server.address() as AddressInfo).port }
  }

  /** Agents connected with a listen stream, by SPIFFE ID. */
  connectedAgents(): string[] {
    return [...this.#listeners.entries()].filter(([, s]) => s.size > 0).map(([id]) => id)
  }

  async close(): Promise<void> {
    for (const p of this.#pending.values()) clearTimeout(p.timer)
    for (const s of this.#sessions) s.destroy()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
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
    const tunnel = /^\/v1\/broker\/tunnels\/([A-Za-z0-9][A-Za-z0-9._-]{0,62})$/.exec(path)
    if (tunnel) return this.#request(stream, headers, principal, tunnel[1]!)
    const accept = /^\/v1\/broker\/accept\/([0-9a-f-]{36})$/.exec(path)
    if (accept) return this.#accept(stream, principal, accept[1]!)
    this.#fail(stream, 404, 'NOT_FOUND', `no broker route ${path.slice(0, 100)}`)
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

  async #request(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    principal: Principal,
    name: string,
  ): Promise<void> {
    const { deps } = this.#opts
    if (!this.#take(principal.spiffeId)) {
      deps.log.warn(
        { agent: principal.spiffeId, tunnel: name },
        'tunnel requests over the rate limit; refused',
      )
      this.#fail(stream, 429, 'RATE_LIMITED', 'too many tunnel requests from this agent; slow down')
      return
    }
    // A tunnel of another trust domain may be used when that trust domain federates with the caller's.
    const owner = header(headers, 'sigil-tunnel-trust-domain') ?? principal.trustDomain
    if (owner !== principal.trustDomain && !(await deps.federates(owner, principal.trustDomain))) {
      deps.log.warn(
        { agent: principal.spiffeId, tunnel: name, owner },
        'tunnel of a trust domain that does not federate',
      )
      this.#fail(
        stream,
        403,
        'TUNNEL_DENIED',
        `trust domain ${owner} does not federate with ${principal.trustDomain}, so its tunnels are closed to it`,
      )
      return
    }
    const tunnel = await deps.tunnel(owner, name)
    if (!tunnel) {
      deps.log.warn({ agent: principal.spiffeId, tunnel: name }, 'request for a tunnel that does not exist')
      this.#fail(
        stream,
        404,
        'TUNNEL_NOT_FOUND',
        `trust domain ${owner} has no tunnel ${JSON.stringify(name)}`,
      )
      return
    }
    const sourceId = header(headers, 'sigil-source-spiffe-id')
    const selectors = selectorsHeader(header(headers, 'sigil-source-selectors'))
    // The source identity is the requesting agent's word (it holds the workload's SVID and proves it to
    // the far agent inside the relay); it must at least be of the agent's trust domain.
    const identified = sourceId?.startsWith(`spiffe://${principal.trustDomain}/`) ? sourceId : undefined
    const reportTo = tunnel.trustDomain
    const flowId = header(headers, 'sigil-flow-id')
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
      this.#fail(stream, 403, 'TUNNEL_DENIED', decision.reason)
      deps.report(reportTo, record)
      return
    }
    const listeners = [...(this.#listeners.get(tunnel.agent) ?? [])].filter((s) => !s.destroyed)
    if (listeners.length === 0) {
      const reason = `the agent offering tunnel ${name} (${tunnel.agent}) is not connected to this broker`
      Object.assign(record, { verdict: 'denied', reason })
      this.#fail(stream, 503, 'TUNNEL_AGENT_OFFLINE', reason)
      deps.report(reportTo, record)
      return
    }
    const id = randomUUID()
    const timeout = this.#opts.acceptTimeoutMs ?? 10_000
    const pending: Pending = {
      id,
      tunnel,
      requester: stream,
      principal,
      record,
      timer: setTimeout(() => {
        this.#pending.delete(id)
        const reason = `the agent offering tunnel ${name} did not answer within ${timeout} ms`
        deps.log.warn({ tunnel: name, agent: tunnel.agent }, reason)
        Object.assign(record, { verdict: 'denied', reason })
        this.#fail(stream, 504, 'TUNNEL_NO_ANSWER', reason)
        deps.report(reportTo, record)
      }, timeout),
    }
    this.#pending.set(id, pending)
    stream.on('close', () => {
      if (this.#pending.get(id) === pending) {
        clearTimeout(pending.timer)
        this.#pending.delete(id)
      }
    })
    const target = listeners[Math.floor(Math.random() * listeners.length)]!
    target.write(`${JSON.stringify({ type: 'dial', id, tunnel: name, service: tunnel.service })}\n`)
  }

  #accept(stream: http2.ServerHttp2Stream, principal: Principal, id: string): void {
    const pending = this.#pending.get(id)
    if (!pending) {
      this.#fail(stream, 404, 'TUNNEL_NOT_PENDING', 'no tunnel connection is waiting under this id')
      return
    }
    if (pending.tunnel.agent !== principal.spiffeId) {
      this.#fail(stream, 403, 'FORBIDDEN', 'only the agent that offers the tunnel may accept it')
      return
    }
    this.#pending.delete(id)
    clearTimeout(pending.timer)
    const { requester, record } = pending
    if (requester.destroyed) {
      stream.close(http2.constants.NGHTTP2_CANCEL)
      return
    }
    requester.respond({ ':status': 200 })
    stream.respond({ ':status': 200 })
    this.active++
    let up = 0
    let down = 0
    requester.on('data', (d: Buffer) => {
      up += d.length
    })
    stream.on('data', (d: Buffer) => {
      down += d.length
    })
    requester.pipe(stream)
    stream.pipe(requester)
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
    // When one side is gone, the other follows: at once after a reset, and after a short grace period
    // (to flush what is in flight) after a clean end, so no relay outlives both its agents' interest.
    const follow = (gone: http2.ServerHttp2Stream, other: http2.ServerHttp2Stream) => () => {
      done()
      if (other.destroyed) return
      if (gone.rstCode && gone.rstCode !== http2.constants.NGHTTP2_NO_ERROR) other.destroy()
      else setTimeout(() => other.destroyed || other.destroy(), 2000).unref()
    }
    requester.on('close', follow(requester, stream))
    stream.on('close', follow(stream, requester))
  }
}
