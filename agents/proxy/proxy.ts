// The agent's proxy: the data plane of one node. It owns the listeners of the proxy configuration:
//   - upstream listeners, where local apps connect in plain TCP to reach a remote service;
//   - the transparent listener, where iptables REDIRECT sends intercepted connections (SO_ORIGINAL_DST);
//   - the egress listener, an HTTP CONNECT proxy for outside names (FQDN rules);
//   - the mesh port (mesh.ts), where far agents deliver streams for the services this node offers.
// Every connection is identified (the local process by the kernel's socket tables, the far side by its
// SVID), decided by the policy on both ends, and reported as a flow record, refused ones included.

import { randomUUID } from 'node:crypto'
import http2 from 'node:http2'
import net from 'node:net'
import type { FlowRecord, FlowSource } from '../../services/flows/flow.ts'
import type { Flow } from '../../services/policy/evaluate.ts'
import { originalDst } from '../native/peer-credentials.ts'
import type { Log } from '../workload/log.ts'
import type { WorkloadAttestor } from '../workload-api/identity-source.ts'
import { BrokerClient } from './broker-client.ts'
import { type CertificateSource, TlsMaterial } from './certificates.ts'
import type { HostPort, ProxyConfig, UpstreamConfig } from './config.ts'
import { ConnectRequestError, readConnectRequest } from './connect-request.ts'
import { LocalIdentity, type LocalWorkload } from './local-identity.ts'
import { MeshPool, MeshServer } from './mesh.ts'
import type { PolicyDecision, PolicyState } from './policy-state.ts'
import type { Endpoint } from './socket-owner.ts'

export interface ProxyOptions {
  config: ProxyConfig
  /** The trust service's CA (brokers present certificates from it). */
  trustBundlePem?: string
  certificates: CertificateSource
  attestor: WorkloadAttestor
  policy: PolicyState
  report(record: FlowRecord): void
  agentId(): string | undefined
  log: Log
  procRoot?: string
}

export interface ProxyAddresses {
  mesh?: HostPort
  upstreams: Record<string, HostPort>
  egress?: HostPort
  transparent?: HostPort
}

const DIAL_TIMEOUT_MS = 10_000
const REASONS: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
}

function endpoint(address: string | undefined, port: number | undefined): Endpoint {
  return { address: address ?? '', port: port ?? 0 }
}

function sameHost(a: string, b: string): boolean {
  const norm = (x: string) => (x.startsWith('::ffff:') ? x.slice(7) : x)
  return norm(a) === norm(b)
}

export class NodeProxy {
  readonly #opts: ProxyOptions
  readonly #tls: TlsMaterial
  readonly #local: LocalIdentity
  readonly pool: MeshPool
  readonly broker: BrokerClient | undefined
  #mesh: MeshServer | undefined
  readonly #servers: net.Server[] = []
  readonly #sockets = new Set<net.Socket>()

  constructor(opts: ProxyOptions) {
    this.#opts = opts
    this.#tls = new TlsMaterial(opts.certificates)
    const local: ConstructorParameters<typeof LocalIdentity>[0] = {
      attestor: opts.attestor,
      certificates: opts.certificates,
    }
    if (opts.procRoot) local.procRoot = opts.procRoot
    this.#local = new LocalIdentity(local)
    if (opts.config.broker) {
      this.broker = new BrokerClient({
        servers: opts.config.broker.servers,
        caPem: opts.trustBundlePem ?? '',
        credentials: () => opts.certificates.agent(),
        onIncoming: (stream) => {
          if (this.#mesh) this.#mesh.acceptDuplex(stream)
          else stream.destroy()
        },
        log: opts.log,
      })
    }
    const broker = this.broker
    this.pool = new MeshPool(this.#tls, opts.log, broker ? (t, h) => broker.open(t, h) : undefined)
  }

  async start(): Promise<ProxyAddresses> {
    const { config } = this.#opts
    const out: ProxyAddresses = { upstreams: {} }
    if (config.mesh) {
      this.#mesh = new MeshServer({
        listen: config.mesh.listen,
        services: config.services,
        certificates: this.#opts.certificates,
        tls: this.#tls,
        decide: (flow) => this.#opts.policy.decide(flow),
        report: (r) => this.#opts.report(r),
        agentId: this.#opts.agentId,
        log: this.#opts.log,
      })
      out.mesh = await this.#mesh.listen()
    }
    this.broker?.start()
    for (const up of config.upstreams) {
      if (!up.listen) continue
      const server = await this.#listen(up.listen, (socket) => {
        const servers = [endpoint(socket.localAddress, socket.localPort)]
        void this.#fromApp(socket, up, servers)
      })
      out.upstreams[up.name] = server
    }
    if (config.egress) out.egress = await this.#listen(config.egress.listen, (s) => void this.#egress(s))
    if (config.transparent)
      out.transparent = await this.#listen(config.transparent.listen, (s) => this.#transparent(s))
    return out
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy()
    await Promise.all(this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
    this.pool.close()
    this.broker?.close()
    await this.#mesh?.close()
  }

  #listen(at: HostPort, onSocket: (s: net.Socket) => void): Promise<HostPort> {
    const server = net.createServer(
      { pauseOnConnect: true, noDelay: true, allowHalfOpen: true },
      (socket) => {
        this.#sockets.add(socket)
        socket.on('close', () => this.#sockets.delete(socket))
        socket.on('error', () => {})
        onSocket(socket)
      },
    )
    this.#servers.push(server)
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(at.port, at.host, () => {
        server.off('error', reject)
        resolve({ host: at.host, port: (server.address() as net.AddressInfo).port })
      })
    })
  }

  #source(who: LocalWorkload): FlowSource {
    const s: FlowSource = { selectors: who.selectors }
    if (who.svid) s.spiffeId = who.svid.spiffeId
    if (who.pid !== undefined) s.pid = who.pid
    if (who.path) s.path = who.path
    if (who.sha256) s.sha256 = who.sha256
    const agent = this.#opts.agentId()
    if (agent) s.agent = agent
    return s
  }

  #record(who: LocalWorkload, destination: FlowRecord['destination'], d: PolicyDecision): FlowRecord {
    const r: FlowRecord = {
      id: randomUUID(),
      side: 'egress',
      start: Date.now(),
      durationMs: 0,
      source: this.#source(who),
      destination,
      bytesOut: 0,
      bytesIn: 0,
      verdict: d.verdict,
      reason: d.reason,
      mode: d.mode,
      policyVersion: d.policyVersion,
    }
    if (d.rule) r.rule = d.rule
    if (!who.svid && who.why && d.verdict !== 'allowed') r.reason = `${d.reason} (${who.why})`
    return r
  }

  #decide(who: LocalWorkload, destination: Flow['destination'], port: number): PolicyDecision {
    const source: Flow['source'] = { selectors: who.selectors }
    if (who.svid) source.spiffeId = who.svid.spiffeId
    return this.#opts.policy.decide({ source, destination, port })
  }

  #refused(record: FlowRecord, reason: string, rule?: string): void {
    record.verdict = 'denied'
    record.reason = reason
    if (rule) record.rule = rule
    else delete record.rule
  }

  /** An app's connection to an upstream: identify it, carry it over the mesh, decide, report. */
  async #fromApp(app: net.Socket, up: UpstreamConfig, servers: Endpoint[]): Promise<void> {
    const started = Date.now()
    const who = await this.#local.identify(endpoint(app.remoteAddress, app.remotePort), servers)
    const destination: FlowRecord['destination'] = { spiffeId: up.spiffeId, service: up.name, port: 0 }
    const first = this.#decide(who, { spiffeId: up.spiffeId }, 0)
    const record = this.#record(who, destination, first)
    record.start = started
    const report = () => {
      record.durationMs = Date.now() - started
      record.bytesOut = app.bytesRead
      record.bytesIn = app.bytesWritten
      this.#opts.report(record)
    }
    // Explicit mode refuses an unidentified source before anything leaves the node.
    if (first.verdict === 'denied' && !who.svid) {
      app.destroy()
      return report()
    }
    if (app.destroyed) {
      this.#refused(record, 'the app closed its connection before it was identified')
      return report()
    }
    const opened = await this.pool.open({
      ...(up.agent ? { agent: up.agent } : { tunnel: up.tunnel! }),
      destinationId: up.spiffeId,
      service: up.service,
      source: who.svid
        ? { kind: 'workload', svid: who.svid, selectors: who.selectors }
        : { kind: 'unidentified' },
      flowId: record.id,
    })
    if (!opened.ok) {
      const reason =
        opened.status === 403 ? `refused by the destination's agent: ${opened.reason}` : opened.reason
      this.#refused(record, reason, opened.status === 403 ? opened.rule : undefined)
      app.destroy()
      return report()
    }
    const { stream } = opened
    destination.port = opened.port
    const decision = this.#decide(
      who,
      { spiffeId: up.spiffeId, selectors: opened.destinationSelectors },
      opened.port,
    )
    record.verdict = decision.verdict
    record.reason = decision.reason
    if (decision.rule) record.rule = decision.rule
    record.mode = decision.mode
    record.policyVersion = decision.policyVersion
    if (decision.verdict === 'denied' || app.destroyed) {
      stream.close(http2.constants.NGHTTP2_CANCEL)
      app.destroy()
      return report()
    }
    this.#splice(app, stream, report)
  }

  /** Joins an app socket and a mesh stream both ways, half-closes included; reports once at the end. */
  #splice(app: net.Socket, stream: http2.ClientHttp2Stream, report: () => void): void {
    let reported = false
    const once = () => {
      if (!reported) {
        reported = true
        report()
      }
    }
    stream.on('error', () => app.destroy())
    stream.on('close', () => {
      if (stream.rstCode && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) app.destroy()
      else if (!app.destroyed) app.end()
    })
    app.on('close', (hadError) => {
      // A clean end went out as END_STREAM through the pipe; only an error resets the stream.
      if (!stream.closed) {
        if (hadError) stream.close(http2.constants.NGHTTP2_CANCEL)
        else setTimeout(() => stream.closed || stream.close(), 30_000).unref()
      }
      once()
    })
    app.pipe(stream)
    stream.pipe(app)
    app.resume()
  }

  async #egress(client: net.Socket): Promise<void> {
    const started = Date.now()
    let target: Awaited<ReturnType<typeof readConnectRequest>>
    client.resume()
    try {
      target = await readConnectRequest(client)
    } catch (err) {
      const status = err instanceof ConnectRequestError ? err.status : 400
      const why = (err as Error).message
      client.end(
        `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${why}\n`,
      )
      return
    }
    const who = await this.#local.identify(endpoint(client.remoteAddress, client.remotePort), [
      endpoint(client.localAddress, client.localPort),
    ])
    const decision = this.#decide(who, { fqdn: target.host }, target.port)
    const record = this.#record(who, { fqdn: target.host, port: target.port }, decision)
    record.start = started
    const report = () => {
      record.durationMs = Date.now() - started
      this.#opts.report(record)
    }
    if (decision.verdict === 'denied') {
      client.end(
        `HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nSigil-Reason: ${encodeURIComponent(decision.reason)}\r\nConnection: close\r\n\r\n${decision.reason}\n`,
      )
      return report()
    }
    this.#dial(client, { host: target.host, port: target.port }, target.rest, record, report, true)
  }

  /** Connects straight to the destination (egress and transparent passthrough) and splices. */
  #dial(
    client: net.Socket,
    to: HostPort,
    head: Buffer,
    record: FlowRecord,
    report: () => void,
    http: boolean,
  ): void {
    const out = net.connect({ host: to.host, port: to.port, allowHalfOpen: true })
    out.setNoDelay(true)
    this.#sockets.add(out)
    let connected = false
    const timer = setTimeout(
      () => out.destroy(new Error(`timed out after ${DIAL_TIMEOUT_MS} ms`)),
      DIAL_TIMEOUT_MS,
    )
    const reportWith = () => {
      record.bytesOut = out.bytesWritten
      record.bytesIn = out.bytesRead
    }
    out.once('connect', () => {
      clearTimeout(timer)
      connected = true
      if (http) client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length) out.write(head)
      client.pipe(out)
      out.pipe(client)
      client.resume()
    })
    out.on('error', (err) => {
      clearTimeout(timer)
      if (!connected) {
        this.#refused(record, `connecting to ${to.host}:${to.port} failed: ${err.message}`)
        if (http)
          client.end(
            `HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${record.reason}\n`,
          )
        else client.destroy()
      }
    })
    let pending = 2
    const closed = () => {
      if (--pending === 0) {
        reportWith()
        report()
      }
    }
    out.on('close', () => {
      this.#sockets.delete(out)
      if (!client.destroyed) client.end()
      closed()
    })
    client.on('close', () => {
      if (!out.destroyed) out.end()
      closed()
    })
  }

  #transparent(app: net.Socket): void {
    const fd = (app as unknown as { _handle?: { fd?: number } })._handle?.fd
    let orig: ReturnType<typeof originalDst> = null
    try {
      if (fd !== undefined && fd >= 0) orig = originalDst(fd)
    } catch (err) {
      this.#opts.log.warn({ err: (err as Error).message }, 'cannot read SO_ORIGINAL_DST')
    }
    if (!orig) {
      this.#opts.log.warn(
        { peer: app.remoteAddress },
        'a connection reached the transparent port directly; closed',
      )
      app.destroy()
      return
    }
    const servers = [endpoint(orig.address, orig.port)]
    const up = this.#opts.config.upstreams.find(
      (u) => u.match && u.match.port === orig.port && sameHost(u.match.host, orig.address),
    )
    if (up) {
      void this.#fromApp(app, up, servers)
      return
    }
    // Not a mesh service: the connection leaves the node as it was addressed, if the policy allows.
    void this.#local.identify(endpoint(app.remoteAddress, app.remotePort), servers).then((who) => {
      const decision = this.#decide(who, { fqdn: orig.address }, orig.port)
      const started = Date.now()
      const record = this.#record(who, { fqdn: orig.address, port: orig.port }, decision)
      const report = () => {
        record.durationMs = Date.now() - started
        this.#opts.report(record)
      }
      if (decision.verdict === 'denied') {
        app.destroy()
        return report()
      }
      this.#dial(app, { host: orig.address, port: orig.port }, Buffer.alloc(0), record, report, false)
    })
  }
}
