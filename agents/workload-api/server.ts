// The SPIFFE Workload API: gRPC over a Unix domain socket. It must never hand a workload an identity
// that is not its own, so the caller is named by the kernel, per connection, and never by anything it
// sends: the accepted socket's peer credentials (SO_PEERCRED) and a pidfd on that process.
//
// @grpc/grpc-js does not give handlers their socket. So this module owns the listening socket (a
// net.Server), identifies each accepted connection before gRPC reads a byte of it, then hands the
// connection to grpc-js through server.createConnectionInjector(). The connection's remoteAddress (empty
// on a Unix socket) is set to a token that only this module makes; a handler finds its caller through
// call.getPeer(), which grpc-js reads from the very socket the call arrived on.

import { randomBytes } from 'node:crypto'
import { chmodSync, lstatSync, mkdirSync, statSync, unlinkSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { requireNativeAddon } from '../native/peer-credentials.ts'
import { attestCaller, type Caller, CallerGoneError, identifyCaller } from '../workload/caller.ts'
import { type Log, silentLog } from '../workload/log.ts'
import { type ProcessTable, ProcFs } from '../workload/process-table.ts'
import type { IdentitySource, Selector, WorkloadAttestor, X509SvidMaterial } from './identity-source.ts'
import {
  encodeResponse,
  type JwtSvidRequest,
  type MethodName,
  preEncodedService,
  SECURITY_HEADER,
  toProtoStruct,
  type ValidateJwtSvidRequest,
} from './proto.ts'
import { jwtBundlesResponse, trustedDomains, x509BundlesResponse, x509SvidResponse } from './responses.ts'

export interface WorkloadApiOptions {
  socketPath: string
  identity: IdentitySource
  attestor: WorkloadAttestor
  log?: Log
  /** Process lookup for the PID-reuse guard (default /proc). */
  processes?: ProcessTable
  /** A connection that starts no call within this time is closed. Default 30 s. */
  idleConnectionMs?: number
  /**
   * Serve bundles and JWT validation to callers that have no identity (SPIRE's
   * allow_unauthenticated_verifiers). Default false: only workloads with an identity get them.
   */
  allowUnauthenticatedVerifiers?: boolean
}

export interface WorkloadApi {
  readonly socketPath: string
  /** Open connections (for tests and metrics). */
  connectionCount(): number
  close(): Promise<void>
}

interface Connection {
  caller: Caller
  socket: net.Socket
  used: boolean
}

const MAX_REQUEST_BYTES = 1024 * 1024
const MAX_STREAMS_PER_CONNECTION = 128

class StatusError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(details)
  }
}

function noIdentity(): StatusError {
  return new StatusError(grpc.status.PERMISSION_DENIED, 'no identity issued')
}

export async function startWorkloadApi(opts: WorkloadApiOptions): Promise<WorkloadApi> {
  requireNativeAddon()
  const { identity, attestor } = opts
  const log = opts.log ?? silentLog
  const processes = opts.processes ?? new ProcFs()
  const socketPath = path.resolve(opts.socketPath)
  const idleMs = opts.idleConnectionMs ?? 30_000
  const openVerifiers = opts.allowUnauthenticatedVerifiers ?? false

  const connections = new Map<string, Connection>()
  const streams = new Set<() => void>()
  // Tokens name connections for getPeer(); the random prefix keeps them unguessable and unlike any address.
  const tokenPrefix = `sigil-workload-${randomBytes(8).toString('hex')}-`
  let nextConnection = 0
  let closing = false

  /** Checks the security header and attests the connection's process. */
  async function authorize(
    call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>,
  ): Promise<{ caller: Caller; selectors: Selector[] }> {
    const header = call.metadata.get(SECURITY_HEADER)
    if (header.length !== 1 || header[0] !== 'true')
      throw new StatusError(grpc.status.INVALID_ARGUMENT, 'security header missing from request')
    let peer = ''
    try {
      peer = call.getPeer()
    } catch {}
    const conn = connections.get(peer)
    if (!conn) throw new StatusError(grpc.status.UNAVAILABLE, 'the connection is closing')
    conn.used = true
    return { caller: conn.caller, selectors: await attest(conn.caller) }
  }

  async function attest(caller: Caller): Promise<Selector[]> {
    try {
      return await attestCaller(attestor, caller, processes)
    } catch (err) {
      if (err instanceof CallerGoneError) {
        log.warn({ pid: caller.pid, uid: caller.uid, reason: err.message }, 'workload API caller refused')
        throw new StatusError(
          grpc.status.UNAUTHENTICATED,
          `could not verify the calling process: ${err.message}`,
        )
      }
      log.warn(
        { pid: caller.pid, uid: caller.uid, err: (err as Error).message },
        'workload attestation failed',
      )
      throw new StatusError(grpc.status.UNAVAILABLE, `workload attestation failed: ${(err as Error).message}`)
    }
  }

  /**
   * The SVIDs of a caller asking for bundles or validation: PermissionDenied without any, unless
   * verifiers without identity are allowed (then undefined: every bundle is theirs to trust).
   */
  function verifierSvids(selectors: Selector[]): X509SvidMaterial[] | undefined {
    const svids = identity.x509Svids(selectors)
    if (svids.length > 0) return svids
    if (openVerifiers) return undefined
    throw noIdentity()
  }

  function asStatus(err: unknown): { code: grpc.status; details: string } {
    if (err instanceof StatusError) return { code: err.code, details: err.details }
    log.warn({ err: (err as Error)?.message }, 'workload API call failed')
    return { code: grpc.status.INTERNAL, details: 'internal error; see the agent log' }
  }

  /**
   * Serves a stream: the first message now, then one after every identity change whose bytes differ.
   * Each message re-attests the caller, so a process that changed (or left) stops getting updates.
   */
  function serveStream(
    method: MethodName,
    build: (selectors: Selector[]) => object,
  ): grpc.handleServerStreamingCall<unknown, Buffer> {
    return (call) => {
      let caller: Caller | undefined
      let done = false
      let last: Buffer | undefined
      let running = false
      let again = false
      let waitingForDrain = false
      let pending: Buffer | undefined
      let unsubscribe = () => {}
      const stop = () => {
        if (done) return
        done = true
        unsubscribe()
        streams.delete(stop)
      }
      streams.add(stop)
      call.on('cancelled', stop)
      call.on('close', stop)
      call.on('error', () => {})

      // Only the newest message matters: while the client is not reading, older updates are dropped.
      const send = (bytes: Buffer) => {
        if (!call.writableNeedDrain) {
          call.write(bytes)
          return
        }
        pending = bytes
        if (waitingForDrain) return
        waitingForDrain = true
        call.once('drain', () => {
          waitingForDrain = false
          const next = pending
          pending = undefined
          if (next && !done) send(next)
        })
      }

      const update = async (first: Promise<{ caller: Caller; selectors: Selector[] }> | null) => {
        if (done) return
        if (running) {
          again = true
          return
        }
        running = true
        try {
          do {
            again = false
            const selectors = first ? (await first).selectors : await attest(caller!)
            first = null
            const bytes = encodeResponse(method, build(selectors))
            if (done) return
            if (!last || !bytes.equals(last)) {
              last = bytes
              send(bytes)
            }
          } while (again && !done)
        } catch (err) {
          if (!done) {
            stop()
            call.emit('error', asStatus(err))
          }
        } finally {
          running = false
        }
      }

      const authorized = authorize(call).then((a) => {
        caller = a.caller
        return a
      })
      // update() reports the failure; this only keeps a stream stopped before it from leaving it unhandled.
      authorized.catch(() => {})
      unsubscribe = identity.onChange(() => {
        if (caller) void update(null)
      })
      void update(authorized)
    }
  }

  function serveUnary<Req>(
    handle: (call: grpc.ServerUnaryCall<Req, Buffer>) => Promise<Buffer>,
  ): grpc.handleUnaryCall<Req, Buffer> {
    return (call, callback) => {
      handle(call).then(
        (bytes) => callback(null, bytes),
        (err) => callback(asStatus(err)),
      )
    }
  }

  const handlers: grpc.UntypedServiceImplementation = {
    FetchX509SVID: serveStream('FetchX509SVID', (selectors) => {
      const svids = identity.x509Svids(selectors)
      if (svids.length === 0) throw noIdentity()
      return x509SvidResponse(svids, identity.x509Bundles())
    }),
    FetchX509Bundles: serveStream('FetchX509Bundles', (selectors) =>
      x509BundlesResponse(verifierSvids(selectors), identity.x509Bundles()),
    ),
    FetchJWTBundles: serveStream('FetchJWTBundles', (selectors) =>
      jwtBundlesResponse(verifierSvids(selectors), identity.jwtBundles()),
    ),
    FetchJWTSVID: serveUnary<JwtSvidRequest>(async (call) => {
      const audience = (call.request.audience ?? []).filter((a) => a.length > 0)
      if (audience.length === 0)
        throw new StatusError(grpc.status.INVALID_ARGUMENT, 'audience must be specified')
      const { selectors } = await authorize(call)
      const spiffeId = call.request.spiffe_id || undefined
      let svids: Awaited<ReturnType<IdentitySource['jwtSvids']>>
      try {
        svids = await identity.jwtSvids(selectors, audience, spiffeId)
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'JWT-SVID could not be issued')
        throw new StatusError(
          grpc.status.UNAVAILABLE,
          `JWT-SVID could not be issued: ${(err as Error).message}`,
        )
      }
      if (svids.length === 0) throw noIdentity()
      return encodeResponse('FetchJWTSVID', {
        svids: svids.map((s) => ({ spiffe_id: s.spiffeId, svid: s.token, hint: s.hint ?? '' })),
      })
    }),
    ValidateJWTSVID: serveUnary<ValidateJwtSvidRequest>(async (call) => {
      const { audience, svid } = call.request
      if (!audience) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'audience must be specified')
      if (!svid) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'svid must be specified')
      const { selectors } = await authorize(call)
      const svids = verifierSvids(selectors)
      // As for the JWT bundles it is served: its own trust domain and those its entries federate with.
      let trusted: Set<string> | undefined
      if (svids) {
        const { own, federated } = trustedDomains(svids)
        trusted = new Set([...own, ...federated])
      }
      let validated: Awaited<ReturnType<IdentitySource['validateJwt']>>
      try {
        validated = await identity.validateJwt(svid, audience, trusted)
      } catch (err) {
        throw new StatusError(grpc.status.INVALID_ARGUMENT, (err as Error).message)
      }
      return encodeResponse('ValidateJWTSVID', {
        spiffe_id: validated.spiffeId,
        claims: toProtoStruct(validated.claims),
      })
    }),
  }

  const server = new grpc.Server({
    'grpc.enable_channelz': 0,
    'grpc.max_receive_message_length': MAX_REQUEST_BYTES,
    // Every open stream re-attests its caller on each identity change; one connection gets a bounded share.
    'grpc.max_concurrent_streams': MAX_STREAMS_PER_CONNECTION,
  })
  server.addService(preEncodedService(), handlers)
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure())

  const listener = net.createServer((socket) => {
    socket.on('error', () => {})
    if (closing) {
      socket.destroy()
      return
    }
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd
    let caller: Caller
    try {
      if (typeof fd !== 'number' || fd < 0) throw new Error('the accepted socket has no file descriptor')
      caller = identifyCaller(fd, processes)
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'workload API connection refused: caller not identified')
      socket.destroy()
      return
    }
    const token = `${tokenPrefix}${++nextConnection}`
    Object.defineProperty(socket, 'remoteAddress', { value: token, configurable: true })
    const conn: Connection = { caller, socket, used: false }
    connections.set(token, conn)
    const idle = setTimeout(() => {
      if (!conn.used) socket.destroy()
    }, idleMs)
    idle.unref()
    socket.once('close', () => {
      clearTimeout(idle)
      connections.delete(token)
      caller.release()
    })
    injector.injectConnection(socket)
  })
  listener.on('error', (err) => log.warn({ err: err.message }, 'workload API listener error'))

  await prepareSocketPath(socketPath)
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err)
    listener.once('error', onError)
    listener.listen(socketPath, () => {
      listener.off('error', onError)
      resolve()
    })
  })
  // Any workload may connect; what it gets is decided by attestation, not by file permissions.
  chmodSync(socketPath, 0o666)
  const socketIno = statSync(socketPath).ino
  log.info({ socketPath }, 'workload API listening')

  return {
    socketPath,
    connectionCount: () => connections.size,
    async close() {
      if (closing) return
      closing = true
      for (const stop of [...streams]) stop()
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()))
      injector.destroy()
      server.forceShutdown()
      for (const conn of connections.values()) conn.socket.destroy()
      await closed
      try {
        // Remove the socket only if it is still ours (another agent may have taken the path since).
        if (statSync(socketPath).ino === socketIno) unlinkSync(socketPath)
      } catch {}
      log.info({ socketPath }, 'workload API closed')
    },
  }
}

/** Creates the socket's directory and removes a stale socket file; refuses to take over a live one. */
async function prepareSocketPath(socketPath: string): Promise<void> {
  // Directories made here must let every uid through to the socket, whatever the umask.
  const dir = path.dirname(socketPath)
  const created = mkdirSync(dir, { recursive: true, mode: 0o755 })
  if (created) {
    for (let d = dir; d.length >= created.length; d = path.dirname(d)) chmodSync(d, 0o755)
  }
  let st: ReturnType<typeof lstatSync>
  try {
    st = lstatSync(socketPath)
  } catch {
    return
  }
  if (!st.isSocket())
    throw new Error(`${socketPath} exists and is not a socket; remove it or choose another --socket`)
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
  if (live) throw new Error(`another process is serving on ${socketPath}; stop it or choose another --socket`)
  unlinkSync(socketPath)
}
