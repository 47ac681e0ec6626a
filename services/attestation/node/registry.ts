// The server's node attestor registry: attestor name -> factory. Attestors are built once per process
// and read each trust domain's configuration from the attestation context (`ctx.config`, the trust
// domain's settings.nodeAttestors[name]); `validateConfig` is for the edge, when an admin saves it.

import { AttestationError, quote } from '../errors.ts'
import { createAwsIidAttestor, type Ec2ClientFactory } from './aws-iid.ts'
import { createAzureMsiAttestor } from './azure-msi.ts'
import { createGcpIitAttestor } from './gcp-iit.ts'
import { createJoinTokenAttestor } from './join-token.ts'
import { createK8sPsatAttestor } from './k8s-psat.ts'
import type { ServerNodeAttestor } from './node-attestor.ts'
import { createX509PopAttestor } from './x509pop.ts'

export type NodeAttestorName = ServerNodeAttestor['name']

export const nodeAttestorNames: readonly NodeAttestorName[] = [
  'join_token',
  'x509pop',
  'aws_iid',
  'k8s_psat',
  'gcp_iit',
  'azure_msi',
]

export interface RegisteredAttestor extends ServerNodeAttestor {
  /** Throws ATTESTATION_CONFIG_INVALID (naming the offending key) unless `config` is usable. */
  validateConfig(config: unknown): void
}

/** Seams for what cannot run in a test as-is: the EC2 API client (tests point it at moto). */
export interface ServerAttestorDeps {
  ec2Client?: Ec2ClientFactory
}

const factories: Record<NodeAttestorName, (deps: ServerAttestorDeps) => RegisteredAttestor> = {
  join_token: () => createJoinTokenAttestor(),
  x509pop: () => createX509PopAttestor(),
  aws_iid: (deps) => createAwsIidAttestor({ ec2Client: deps.ec2Client }),
  k8s_psat: () => createK8sPsatAttestor(),
  gcp_iit: () => createGcpIitAttestor(),
  azure_msi: () => createAzureMsiAttestor(),
}

export interface NodeAttestorRegistry {
  readonly names: readonly NodeAttestorName[]
  /** The attestor of that name, or undefined (the caller answers ATTESTOR_UNKNOWN). */
  get(name: string): RegisteredAttestor | undefined
  /** Like get, but throws ATTESTOR_UNKNOWN. */
  require(name: string): RegisteredAttestor
  /** Validates a trust domain's `nodeAttestors` settings: known names, each configuration valid. */
  validateSettings(nodeAttestors: unknown): void
}

export function isNodeAttestorName(name: unknown): name is NodeAttestorName {
  return typeof name === 'string' && (nodeAttestorNames as readonly string[]).includes(name)
}

export function createNodeAttestorRegistry(deps: ServerAttestorDeps = {}): NodeAttestorRegistry {
  if (typeof deps !== 'object' || deps === null) throw new TypeError('deps must be an object')
  if (deps.ec2Client !== undefined && typeof deps.ec2Client !== 'function') {
    throw new TypeError('deps.ec2Client must be a function (region, endpoint) => EC2 client')
  }
  const built = new Map<NodeAttestorName, RegisteredAttestor>()
  const get = (name: string): RegisteredAttestor | undefined => {
    if (!isNodeAttestorName(name)) return undefined
    let attestor = built.get(name)
    if (!attestor) {
      attestor = factories[name](deps)
      built.set(name, attestor)
    }
    return attestor
  }
  const require = (name: string): RegisteredAttestor => {
    const attestor = get(name)
    if (!attestor) {
      throw new AttestationError(
        'ATTESTOR_UNKNOWN',
        `node attestor ${quote(name)} is unknown (known: ${nodeAttestorNames.join(', ')})`,
      )
    }
    return attestor
  }
  return {
    names: nodeAttestorNames,
    get,
    require,
    validateSettings(nodeAttestors) {
      if (nodeAttestors === undefined) return
      if (typeof nodeAttestors !== 'object' || nodeAttestors === null || Array.isArray(nodeAttestors)) {
        throw new AttestationError(
          'ATTESTATION_CONFIG_INVALID',
          'nodeAttestors must be an object keyed by attestor name',
        )
      }
      for (const [name, config] of Object.entries(nodeAttestors)) require(name).validateConfig(config)
    },
  }
}
