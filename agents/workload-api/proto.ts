// workload.proto loaded once (protobufjs through @grpc/proto-loader), the messages as TypeScript types
// (field names as in the proto), and google.protobuf.Struct to and from plain JSON.

import { fileURLToPath } from 'node:url'
import type * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

export const PROTO_PATH = fileURLToPath(new URL('./workload.proto', import.meta.url))

/** The gRPC metadata every Workload API request must carry (SPIFFE Workload API standard). */
export const SECURITY_HEADER = 'workload.spiffe.io'

export interface X509Svid {
  spiffe_id: string
  x509_svid: Buffer
  x509_svid_key: Buffer
  bundle: Buffer
  hint: string
}
export interface X509SvidResponse {
  svids: X509Svid[]
  crl: Buffer[]
  federated_bundles: Record<string, Buffer>
}
export interface X509BundlesResponse {
  crl: Buffer[]
  bundles: Record<string, Buffer>
}
export interface JwtSvidRequest {
  audience: string[]
  spiffe_id: string
}
export interface JwtSvid {
  spiffe_id: string
  svid: string
  hint: string
}
export interface JwtSvidResponse {
  svids: JwtSvid[]
}
export interface JwtBundlesResponse {
  bundles: Record<string, Buffer>
}
export interface ValidateJwtSvidRequest {
  audience: string
  svid: string
}
export interface ValidateJwtSvidResponse {
  spiffe_id: string
  claims: ProtoStruct | null
}

export interface ProtoStruct {
  fields: Record<string, ProtoValue>
}
export interface ProtoValue {
  kind?: string
  nullValue?: string | number
  numberValue?: number
  stringValue?: string
  boolValue?: boolean
  structValue?: ProtoStruct
  listValue?: { values: ProtoValue[] }
}

export type MethodName =
  | 'FetchX509SVID'
  | 'FetchX509Bundles'
  | 'FetchJWTSVID'
  | 'FetchJWTBundles'
  | 'ValidateJWTSVID'

const definition = protoLoader.loadSync(PROTO_PATH, {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
})

/** The SpiffeWorkloadAPI service as @grpc/grpc-js takes it (for clients and servers). */
export const workloadService = definition.SpiffeWorkloadAPI as unknown as grpc.ServiceDefinition &
  Record<MethodName, grpc.MethodDefinition<unknown, unknown>>

/** Encodes a response message of `method` (so a stream can compare an update with what it last sent). */
export function encodeResponse(method: MethodName, message: object): Buffer {
  const bytes = workloadService[method].responseSerialize(message)
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes)
}

/** The service for a server whose handlers write responses already encoded with encodeResponse. */
export function preEncodedService(): grpc.ServiceDefinition {
  const service: Record<string, grpc.MethodDefinition<unknown, Buffer>> = {}
  for (const [name, method] of Object.entries(workloadService)) {
    service[name] = {
      ...(method as grpc.MethodDefinition<unknown, Buffer>),
      responseSerialize: (b: Buffer) => b,
    }
  }
  return service
}

export function toProtoValue(value: unknown): ProtoValue {
  if (value === null || value === undefined) return { nullValue: 'NULL_VALUE' }
  if (typeof value === 'number') return { numberValue: value }
  if (typeof value === 'string') return { stringValue: value }
  if (typeof value === 'boolean') return { boolValue: value }
  if (Array.isArray(value)) return { listValue: { values: value.map(toProtoValue) } }
  if (typeof value === 'object') return { structValue: toProtoStruct(value as Record<string, unknown>) }
  return { stringValue: String(value) }
}

export function toProtoStruct(obj: Record<string, unknown>): ProtoStruct {
  const fields: Record<string, ProtoValue> = {}
  for (const [key, value] of Object.entries(obj)) fields[key] = toProtoValue(value)
  return { fields }
}

export function fromProtoValue(value: ProtoValue): unknown {
  switch (value.kind) {
    case 'numberValue':
      return value.numberValue
    case 'stringValue':
      return value.stringValue
    case 'boolValue':
      return value.boolValue
    case 'structValue':
      return fromProtoStruct(value.structValue!)
    case 'listValue':
      return (value.listValue?.values ?? []).map(fromProtoValue)
    default:
      return null
  }
}

export function fromProtoStruct(struct: ProtoStruct | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(struct?.fields ?? {})) out[key] = fromProtoValue(value)
  return out
}
