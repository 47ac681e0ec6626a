// A Workload API client over the Unix socket (the `sigil agent api` commands and the tests use it).
// Streams are read for their first message unless watched.

import * as grpc from '@grpc/grpc-js'
import {
  fromProtoStruct,
  type JwtBundlesResponse,
  type JwtSvidResponse,
  SECURITY_HEADER,
  type ValidateJwtSvidResponse,
  workloadService,
  type X509BundlesResponse,
  type X509SvidResponse,
} from './proto.ts'

const ClientConstructor = grpc.makeClientConstructor(workloadService, 'SpiffeWorkloadAPI')

type StreamMethod = 'FetchX509SVID' | 'FetchX509Bundles' | 'FetchJWTBundles'

export interface WorkloadApiClientOptions {
  /** Send the security header (default true; tests turn it off to see the refusal). */
  securityHeader?: boolean
  /** Per-call deadline in milliseconds. Default 30 s. */
  timeoutMs?: number
}

export interface Watch {
  cancel(): void
}

export class WorkloadApiClient {
  readonly #client: grpc.Client & Record<string, (...args: unknown[]) => unknown>
  readonly #header: boolean
  readonly #timeoutMs: number

  constructor(socketPath: string, opts: WorkloadApiClientOptions = {}) {
    this.#client = new ClientConstructor(
      `unix://${socketPath}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & Record<string, (...args: unknown[]) => unknown>
    this.#header = opts.securityHeader ?? true
    this.#timeoutMs = opts.timeoutMs ?? 30_000
  }

  close(): void {
    this.#client.close()
  }

  #metadata(): grpc.Metadata {
    const md = new grpc.Metadata()
    if (this.#header) md.set(SECURITY_HEADER, 'true')
    return md
  }

  #deadline(): grpc.Deadline {
    return Date.now() + this.#timeoutMs
  }

  #unary<T>(method: string, request: object): Promise<T> {
    return new Promise((resolve, reject) => {
      this.#client[method]!(
        request,
        this.#metadata(),
        { deadline: this.#deadline() },
        (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)),
      )
    })
  }

  /** Calls `onMessage` for every message of a stream until cancelled or failed. */
  watch<T>(
    method: StreamMethod,
    onMessage: (msg: T) => void,
    onError: (err: grpc.ServiceError) => void,
  ): Watch {
    const call = this.#client[method]!({}, this.#metadata()) as grpc.ClientReadableStream<T>
    let cancelled = false
    call.on('data', onMessage)
    call.on('error', (err: grpc.ServiceError) => {
      if (!cancelled) onError(err)
    })
    return {
      cancel() {
        cancelled = true
        call.cancel()
      },
    }
  }

  #first<T>(method: StreamMethod): Promise<T> {
    return new Promise((resolve, reject) => {
      const call = this.#client[method]!({}, this.#metadata(), {
        deadline: this.#deadline(),
      }) as grpc.ClientReadableStream<T>
      let settled = false
      call.on('data', (msg: T) => {
        if (settled) return
        settled = true
        resolve(msg)
        call.cancel()
      })
      call.on('error', (err: grpc.ServiceError) => {
        if (settled) return
        settled = true
        reject(err)
      })
      call.on('end', () => {
        if (settled) return
        settled = true
        reject(Object.assign(new Error('the stream ended without a message'), { code: grpc.status.UNKNOWN }))
      })
    })
  }

  fetchX509Svid(): Promise<X509SvidResponse> {
    return this.#first('FetchX509SVID')
  }

  fetchX509Bundles(): Promise<X509BundlesResponse> {
    return this.#first('FetchX509Bundles')
  }

  fetchJwtBundles(): Promise<JwtBundlesResponse> {
    return this.#first('FetchJWTBundles')
  }

  fetchJwtSvid(audience: string[], spiffeId?: string): Promise<JwtSvidResponse> {
    return this.#unary('FetchJWTSVID', { audience, spiffe_id: spiffeId ?? '' })
  }

  async validateJwtSvid(
    audience: string,
    token: string,
  ): Promise<{ spiffeId: string; claims: Record<string, unknown> }> {
    const res = await this.#unary<ValidateJwtSvidResponse>('ValidateJWTSVID', { audience, svid: token })
    return { spiffeId: res.spiffe_id, claims: fromProtoStruct(res.claims) }
  }
}

/** The gRPC status name of an error from this client (PERMISSION_DENIED, ...), or undefined. */
export function grpcStatusName(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code
  return typeof code === 'number' ? grpc.status[code] : undefined
}
