// The mesh: agent-to-agent mutual TLS, multiplexed with HTTP/2 CONNECT (as Istio's HBONE does).
//
// A connection between two agents carries the identities of one (source workload, destination
// workload) pair: the client presents the source workload's SVID, the server the destination's (picked
// by SNI), so each end proves exactly who it speaks for. Connections are pooled per (far agent,
// destination identity, source certificate) and every app connection is one CONNECT stream on them: a
// new app connection pays no handshake. When a certificate rotates, the next stream opens a new
// connection with the new one and the old connection is closed gracefully once its streams end, so an
// established stream is never dropped.
//
// Stream headers (request): `:authority` = the far service's name, `sigil-flow-id` (so both sides'
// flow reports join up), `sigil-source-selectors` (JSON, what the caller's agent attested; lets the far
// side apply selector rules as the caller's side does), `sigil-source: unidentified` when the client
// certificate is the calling agent's own (the source process has no identity).
// Response: 200 with `sigil-port` and `sigil-destination-selectors`, or 403/404/502 with
// `sigil-reason` (URI-encoded) and `sigil-rule`.

import { randomUUID } from 'node:crypto'
import http2 from 'node:http2'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import tls, { type TLSSocket } from 'node:tls'
import type { FlowRecord } from '../../services/flows/flow.ts'
import type { Flow } from '../../services/policy/evaluate.ts'
import type { Log } from '../workload/log.ts'
import type { X509SvidMaterial } from '../workload-api/identity-source.ts'
import type { TunnelHeaders } from './broker-client.ts'
import {
  type CertificateSource,
  chainRoot,
  isAgentId,
  sniFor,
  spiffeIdOf,
  type TlsMaterial,
  trustDomainOf,
} from './certificates.ts'
import { formatHostPort, type HostPort, type ServiceConfig } from './config.ts'
import type { PolicyDecision } from './policy-state.ts'

const MAX_SELECTORS = 64
const MAX_SELECTOR_HEADER = 8192
const SESSION_IDLE_MS = 60_000
const CONNECT_TIMEOUT_MS = 10_000
const WINDOW = 8 * 1024 * 1024
/** How long a stream whose far end closed waits for the caller to close its side. */
const LINGER_MS = 30_000

export const H2_SETTINGS: http2.Settings = {
  initialWindowSize: WINDOW,
  maxConcurrentStreams: 10_000,
  enablePush: false,
}

/**
 * A client's SPIFFE ID and chain root, read once per TLS connection: the certificate cannot change
 * during the connection, and decoding it (with its chain) is the costliest part of a pooled stream.
 */
const peers = new WeakMap<TLSSocket, { peerId: string | undefined; root: string | undefined }>()

function peerOf(socket: TLSSocket): { peerId: string | undefined; root: string | undefined } {
  let peer = peers.get(socket)
  if (!peer) {
    const chain = socket.getPeerCertificate(true)
    peer = { peerId: spiffeIdOf(chain), root: chainRoot(chain) }
    peers.set(socket, peer)
  }
  return peer
}

function header(headers: http2.IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v[0] : v
}

function decodeReason(v: string | undefined): string {
  if (!v) return ''
  try {
    return decodeURIComponent(v)
  } catch {
    return v
  }
}

export function parseSelectorHeader(v: string | undefined): string[] {
  if (!v || v.length > MAX_SELECTOR_HEADER) return []
  try {
    const list = JSON.parse(v)
    if (!Array.isArray(list)) return []
    return list.filter((s) => typeof s === 'string' && s.length <= 1024).slice(0, MAX_SELECTORS)
  } catch {
    return []
  }
}

const FLOW_ID = /^[0-9a-f-]{36}$/

// --- the server side ----------------------------------------------------------------------------------

export interface MeshServerOptions {
  listen: HostPort
  services: ServiceConfig[]
  certificates: CertificateSource
  tls: TlsMaterial
  decide(flow: Flow): PolicyDecision
  report(record: FlowRecord): void
  agentId(): string | undefined
  log: Log
}

export class MeshServer {
  readonly #opts: MeshServerOptions
  readonly #bySni = new Map<string, ServiceConfig>()
  readonly #byName = new Map<string, ServiceConfig>()
  readonly #server: http2.Http2SecureServer
  readonly #sessions = new Set<http2.ServerHttp2Session>()
  #unwatch: () => void
  #lastRefusalLog = 0

  constructor(opts: MeshServerOptions) {
    this.#opts = opts
    for (const s of opts.services) {
      this.#bySni.set(sniFor(s.spiffeId), s)
      this.#byName.set(s.name, s)
    }
    this.#server = http2.createSecureServer({
      ALPNProtocols: ['h2'],
      minVersion: 'TLSv1.3',
      requestCert: true,
      // Verified in 'secureConnection' below, so a refusal is logged with OpenSSL's reason.
      rejectUnauthorized: false,
      ca: opts.tls.rootsPem || undefined,
      handshakeTimeout: 10_000,
      settings: H2_SETTINGS,
      maxSessionMemory: 64,
      SNICallback: (servername, cb) => this.#sni(servername, cb),
    })
    // The verify store of the default context is the one OpenSSL checks client certificates against.
    this.#unwatch = opts.certificates.onChange(() => {
      if (opts.tls.rootsPem) this.#server.setSecureContext({ ca: opts.tls.rootsPem, minVersion: 'TLSv1.3' })
    })
    this.#server.on('session', (session) => {
      this.#sessions.add(session)
      session.on('close', () => this.#sessions.delete(session))
      session.setLocalWindowSize(WINDOW * 4)
      session.setTimeout(5 * 60_000, () => session.close())
    })
    this.#server.on('stream', (stream, headers) => this.#onStream(stream, headers))
    this.#server.on('secureConnection', (socket: TLSSocket) => {
      if (socket.authorized) return
      this.#logRefusal(String(socket.authorizationError), socket.remoteAddress)
      socket.destroy()
    })
    this.#server.on('tlsClientError', (err: Error & { code?: string }, socket) => {
      this.#logRefusal(err.code ?? err.message, socket.remoteAddress)
    })
    this.#server.on('sessionError', () => {})
  }

  listen(): Promise<HostPort> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(this.#opts.listen.port, this.#opts.listen.host, () => {
        this.#server.off('error', reject)
        const a = this.#server.address() as net.AddressInfo
        resolve({ host: this.#opts.listen.host, port: a.port })
      })
    })
  }

  /** A connection relayed by the tunnel broker: the far agent's TLS arrives over this stream. */
  acceptDuplex(stream: Duplex): void {
    this.#server.emit('connection', stream)
  }

  async close(): Promise<void> {
    this.#unwatch()
    for (const s of this.#sessions) s.destroy()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  /** Rate limited: a port scan or a flood must not flood the log. */
  #logRefusal(reason: string, peer: string | undefined): void {
    const now = Date.now()
    if (now - this.#lastRefusalLog < 1000) return
    this.#lastRefusalLog = now
    this.#opts.log.info({ reason, peer }, 'mesh connection refused: the client certificate did not verify')
  }

  #sni(servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void {
    const service = this.#bySni.get(servername)
    if (!service) {
      cb(new Error(`no service for SNI ${servername}`))
      return
    }
    const svid = this.#opts.certificates.byId(service.spiffeId)
    if (!svid) {
      cb(new Error(`no SVID yet for ${service.spiffeId}`))
      return
    }
    cb(null, this.#opts.tls.forSvid(svid))
  }

  #refuse(stream: http2.ServerHttp2Stream, status: number, reason: string, rule?: string): void {
    if (stream.destroyed || stream.headersSent) return
    const h: http2.OutgoingHttpHeaders = { ':status': status, 'sigil-reason': encodeURIComponent(reason) }
    if (rule) h['sigil-rule'] = rule
    stream.respond(h, { endStream: true })
  }

  #onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const start = Date.now()
    stream.on('error', () => {})
    const socket = stream.session?.socket as TLSSocket | undefined
    if (!socket) {
      stream.close()
      return
    }
    if (header(headers, ':method') !== 'CONNECT') {
      this.#refuse(stream, 405, 'only CONNECT is served')
      return
    }
    const { peerId, root } = peerOf(socket)
    const served = this.#bySni.get((socket as TLSSocket & { servername?: string }).servername ?? '')
    const authority = header(headers, ':authority') ?? ''
    const name = authority.replace(/:\d+$/, '')
    const service = this.#byName.get(name)
    // Own or federated trust domain, anchored in that trust domain's own roots (TlsMaterial.trustsPeer).
    if (!socket.authorized || !peerId || !this.#opts.tls.trustsPeerRoot(peerId, root)) {
      this.#refuse(
        stream,
        403,
        'the client certificate is not an SVID of this trust domain or a federated one',
      )
      return
    }
    if (!service || !served || service.spiffeId !== served.spiffeId) {
      const as = served ? ` as ${served.spiffeId}` : ''
      this.#refuse(stream, 404, `this agent offers no service ${JSON.stringify(name)}${as}`)
      return
    }

    const unidentified = isAgentId(peerId)
    const selectors = unidentified ? [] : parseSelectorHeader(header(headers, 'sigil-source-selectors'))
    const flowId = header(headers, 'sigil-flow-id') ?? ''
    const destinationSelectors = this.#opts.certificates.selectorsOf(service.spiffeId)
    const flow: Flow = {
      source: unidentified ? { selectors } : { spiffeId: peerId, selectors },
      destination: { spiffeId: service.spiffeId, selectors: destinationSelectors },
      port: service.forward.port,
    }
    const decision = this.#opts.decide(flow)
    const record: FlowRecord = {
      id: FLOW_ID.test(flowId) ? flowId : randomUUID(),
      side: 'ingress',
      start,
      durationMs: 0,
      source: unidentified ? { agent: peerId, selectors } : { spiffeId: peerId, selectors },
      destination: { spiffeId: service.spiffeId, service: service.name, port: service.forward.port },
      bytesOut: 0,
      bytesIn: 0,
      verdict: decision.verdict,
      reason: decision.reason,
      mode: decision.mode,
      policyVersion: decision.policyVersion,
    }
    if (decision.rule) record.rule = decision.rule
    const agent = this.#opts.agentId()
    if (agent) record.destination.agent = agent
    if (decision.verdict === 'denied') {
      this.#refuse(stream, 403, decision.reason, decision.rule)
      this.#opts.report(record)
      return
    }

    const upstream = net.connect({
      host: service.forward.host,
      port: service.forward.port,
      allowHalfOpen: true,
    })
    upstream.setNoDelay(true)
    let connected = false
    const timer = setTimeout(() => upstream.destroy(new Error('timed out')), CONNECT_TIMEOUT_MS)
    let done = false
    const finish = (why?: string) => {
      if (done) return
      done = true
      record.durationMs = Date.now() - start
      record.bytesOut = upstream.bytesWritten
      record.bytesIn = upstream.bytesRead
      if (why) record.reason = why
      this.#opts.report(record)
    }
    upstream.once('connect', () => {
      clearTimeout(timer)
      connected = true
      if (stream.destroyed) return void upstream.destroy()
      stream.respond({
        ':status': 200,
        'sigil-port': String(service.forward.port),
        'sigil-destination-selectors': JSON.stringify(destinationSelectors.slice(0, MAX_SELECTORS)),
      })
      stream.pipe(upstream)
      upstream.pipe(stream)
    })
    upstream.on('error', (err) => {
      clearTimeout(timer)
      if (!connected) {
        const why = `the service ${service.name} at ${formatHostPort(service.forward)} is unreachable: ${err.message}`
        this.#refuse(stream, 502, why)
        finish(why)
      }
      stream.close(http2.constants.NGHTTP2_CANCEL)
    })
    upstream.on('close', (hadError) => {
      clearTimeout(timer)
      // A clean close was already passed on as END_STREAM by the pipe (closing the stream here would
      // send RST_STREAM and drop what is still buffered); an error resets the stream.
      if (hadError && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL)
      else if (!stream.destroyed) setTimeout(() => stream.destroyed || stream.close(), LINGER_MS).unref()
      finish()
    })
    stream.on('close', () => {
      if (!upstream.destroyed) upstream.destroy()
    })
  }
}

// --- the client side: a pool of connections to far agents ---------------------------------------------

export type MeshSource =
  | { kind: 'workload'; svid: X509SvidMaterial; selectors: string[] }
  | { kind: 'unidentified' }

export interface MeshOpenRequest {
  /** The far agent's mesh address, or */
  agent?: HostPort
  /** the tunnel that leads to it through the broker. */
  tunnel?: string
  destinationId: string
  service: string
  source: MeshSource
  flowId: string
}

export type MeshOpenResult =
  | { ok: true; stream: http2.ClientHttp2Stream; port: number; destinationSelectors: string[] }
  | { ok: false; status: number; reason: string; rule?: string }

interface PooledSession {
  session?: http2.ClientHttp2Session
  ready: Promise<http2.ClientHttp2Session>
}

/** Opens a stream to the far agent through the broker (see broker-client.ts). */
export type TunnelOpener = (
  tunnel: string,
  headers: TunnelHeaders,
) => Promise<{ ok: true; stream: Duplex } | { ok: false; status: number; reason: string }>

function where(req: MeshOpenRequest): string {
  return req.tunnel ? `tunnel ${req.tunnel}` : `the far agent ${formatHostPort(req.agent!)}`
}

export class MeshPool {
  readonly #tls: TlsMaterial
  readonly #log: Log
  readonly #sessions = new Map<string, PooledSession>()
  /** (agent, destination, source identity) -> the key of its newest connection. */
  readonly #newest = new Map<string, string>()
  handshakes = 0

  readonly #tunnels: TunnelOpener | undefined

  constructor(tlsMaterial: TlsMaterial, log: Log, tunnels?: TunnelOpener) {
    this.#tls = tlsMaterial
    this.#log = log
    this.#tunnels = tunnels
  }

  get size(): number {
    return this.#sessions.size
  }

  async open(req: MeshOpenRequest): Promise<MeshOpenResult> {
    let context: tls.SecureContext
    let sourceKey: string
    let generation: string
    if (req.source.kind === 'workload') {
      context = this.#tls.forSvid(req.source.svid)
      sourceKey = req.source.svid.spiffeId
      generation = String(this.#tls.generation(req.source.svid))
    } else {
      const agent = this.#tls.forAgent()
      if (!agent) return { ok: false, status: 503, reason: 'this agent has no SVID yet' }
      context = agent.context
      sourceKey = agent.spiffeId
      generation = agent.generation
    }
    const base = `${req.tunnel ? `tunnel:${req.tunnel}` : formatHostPort(req.agent!)}|${req.destinationId}|${sourceKey}`
    const key = `${base}|${generation}`
    let pooled = this.#sessions.get(key)
    if (!pooled || pooled.session?.closed || pooled.session?.destroyed) {
      pooled = this.#connect(key, req, context, sourceKey)
      this.#sessions.set(key, pooled)
    }
    const previous = this.#newest.get(base)
    if (previous !== key) {
      this.#newest.set(base, key)
      // The certificate rotated: the old connection takes no new streams and ends with its last one.
      const old = previous ? this.#sessions.get(previous) : undefined
      if (old) {
        this.#sessions.delete(previous!)
        old.session?.close()
      }
    }
    let session: http2.ClientHttp2Session
    try {
      session = await pooled.ready
    } catch (err) {
      if (this.#sessions.get(key) === pooled) this.#sessions.delete(key)
      return { ok: false, status: (err as { status?: number }).status ?? 502, reason: (err as Error).message }
    }
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'CONNECT',
      ':authority': `${req.service}:${req.agent?.port ?? 443}`,
      'sigil-flow-id': req.flowId,
    }
    if (req.source.kind === 'workload')
      headers['sigil-source-selectors'] = JSON.stringify(req.source.selectors.slice(0, MAX_SELECTORS))
    else headers['sigil-source'] = 'unidentified'
    let stream: http2.ClientHttp2Stream
    try {
      stream = session.request(headers, { endStream: false })
    } catch (err) {
      this.#sessions.delete(key)
      return {
        ok: false,
        status: 502,
        reason: `the far agent's connection failed: ${(err as Error).message}`,
      }
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        stream.close(http2.constants.NGHTTP2_CANCEL)
        resolve({
          ok: false,
          status: 504,
          reason: `the far agent did not answer within ${CONNECT_TIMEOUT_MS} ms`,
        })
      }, CONNECT_TIMEOUT_MS)
      stream.once('response', (h) => {
        clearTimeout(timer)
        const status = Number(h[':status'])
        if (status === 200) {
          resolve({
            ok: true,
            stream,
            port: Number(header(h, 'sigil-port') ?? 0),
            destinationSelectors: parseSelectorHeader(header(h, 'sigil-destination-selectors')),
          })
          return
        }
        const result: MeshOpenResult = {
          ok: false,
          status,
          reason: decodeReason(header(h, 'sigil-reason')) || `the far agent answered ${status}`,
        }
        const rule = header(h, 'sigil-rule')
        if (rule) result.rule = rule
        stream.close()
        resolve(result)
      })
      stream.once('error', (err) => {
        clearTimeout(timer)
        resolve({ ok: false, status: 502, reason: `the mesh stream failed: ${err.message}` })
      })
    })
  }

  close(): void {
    for (const { session } of this.#sessions.values()) session?.destroy()
    this.#sessions.clear()
  }

  #connect(
    key: string,
    req: MeshOpenRequest,
    secureContext: tls.SecureContext,
    sourceId: string,
  ): PooledSession {
    const expected = req.destinationId
    const pooled: PooledSession = { ready: Promise.resolve() as never }
    pooled.ready = (async () => {
      let relayed: Duplex | undefined
      if (req.tunnel) {
        if (!this.#tunnels) throw new Error(`tunnel ${req.tunnel}: this agent has no broker configured`)
        const headers: TunnelHeaders = { flowId: req.flowId }
        // A tunnel of a federated trust domain: the broker looks it up there.
        const owner = trustDomainOf(expected)
        if (owner !== trustDomainOf(sourceId)) headers.trustDomain = owner
        if (req.source.kind === 'workload') {
          headers.sourceSpiffeId = sourceId
          headers.sourceSelectors = req.source.selectors.slice(0, MAX_SELECTORS)
        }
        const opened = await this.#tunnels(req.tunnel, headers)
        if (!opened.ok) {
          const prefix = opened.status === 403 ? 'refused by the broker' : `tunnel ${req.tunnel}`
          throw Object.assign(new Error(`${prefix}: ${opened.reason}`), { status: opened.status })
        }
        relayed = opened.stream
      }
      this.handshakes++
      const session = http2.connect(
        `https://${req.agent ? formatHostPort(req.agent) : 'tunnel.sigil.invalid'}`,
        {
          settings: H2_SETTINGS,
          maxSessionMemory: 64,
          createConnection: () => {
            const socket = tls.connect({
              ...(relayed ? { socket: relayed } : { host: req.agent!.host, port: req.agent!.port }),
              servername: sniFor(expected),
              secureContext,
              ALPNProtocols: ['h2'],
              minVersion: 'TLSv1.3',
              rejectUnauthorized: true,
              checkServerIdentity: (_host, cert) => {
                const id = spiffeIdOf(cert)
                return id === expected && this.#tls.trustsPeer(id, cert)
                  ? undefined
                  : Object.assign(
                      new Error(`the far side proved ${id ?? 'no SPIFFE ID'}, expected ${expected}`),
                      {
                        code: 'ERR_SPIFFE_ID_MISMATCH',
                      },
                    )
              },
            })
            if (!relayed) socket.setNoDelay(true)
            return socket
          },
        },
      )
      pooled.session = session
      session.on('error', (err) => this.#log.debug?.({ err: err.message, key }, 'mesh connection error'))
      session.on('close', () => {
        if (this.#sessions.get(key) === pooled) this.#sessions.delete(key)
      })
      session.setTimeout(SESSION_IDLE_MS, () => session.close())
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          session.destroy()
          reject(new Error(`no connection to ${where(req)} within ${CONNECT_TIMEOUT_MS} ms`))
        }, CONNECT_TIMEOUT_MS)
        session.once('connect', () => {
          clearTimeout(timer)
          session.setLocalWindowSize(WINDOW * 4)
          resolve()
        })
        session.once('error', (err: Error) => {
          clearTimeout(timer)
          reject(new Error(`mTLS to ${where(req)} failed: ${err.message}`))
        })
      })
      session.unref()
      return session
    })()
    pooled.ready.catch(() => {})
    return pooled
  }
}
