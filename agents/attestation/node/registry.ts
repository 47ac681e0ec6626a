// The agent's node attestor registry: attestor name -> factory over that attestor's configuration
// (from `sigil agent run --attestor NAME ...`). Each collects the evidence its server-side namesake
// (services/attestation/node/) verifies.

import { type AwsIidAgentConfig, createAwsIidAgentAttestor } from './aws-iid.ts'
import { type AzureMsiAgentConfig, createAzureMsiAgentAttestor } from './azure-msi.ts'
import { createGcpIitAgentAttestor, type GcpIitAgentConfig } from './gcp-iit.ts'
import { createJoinTokenAgentAttestor, type JoinTokenAgentConfig } from './join-token.ts'
import { createK8sPsatAgentAttestor, type K8sPsatAgentConfig } from './k8s-psat.ts'
import type { AgentNodeAttestor } from './node-attestor.ts'
import { createX509PopAgentAttestor, type X509PopAgentConfig } from './x509pop.ts'

export type AgentNodeAttestorName = AgentNodeAttestor['name']

export interface AgentNodeAttestorConfigs {
  join_token: JoinTokenAgentConfig
  x509pop: X509PopAgentConfig
  aws_iid: AwsIidAgentConfig
  k8s_psat: K8sPsatAgentConfig
  gcp_iit: GcpIitAgentConfig
  azure_msi: AzureMsiAgentConfig
}

/** Seams: the HTTP client for metadata services (tests point the URLs at local servers instead). */
export interface AgentAttestorDeps {
  fetch?: typeof fetch
}

type Factory = (config: never, deps: AgentAttestorDeps) => AgentNodeAttestor | Promise<AgentNodeAttestor>

const factories: Record<AgentNodeAttestorName, Factory> = {
  join_token: (config: JoinTokenAgentConfig) => createJoinTokenAgentAttestor(config),
  x509pop: (config: X509PopAgentConfig) => createX509PopAgentAttestor(config),
  aws_iid: (config: AwsIidAgentConfig, deps) => createAwsIidAgentAttestor(config, deps),
  k8s_psat: (config: K8sPsatAgentConfig) => createK8sPsatAgentAttestor(config),
  gcp_iit: (config: GcpIitAgentConfig, deps) => createGcpIitAgentAttestor(config, deps),
  azure_msi: (config: AzureMsiAgentConfig, deps) => createAzureMsiAgentAttestor(config, deps),
}

export const agentNodeAttestorNames = Object.keys(factories) as AgentNodeAttestorName[]

/** Builds an attestor; a wrong name or configuration shape is a TypeError naming the option. */
export async function createAgentNodeAttestor<N extends AgentNodeAttestorName>(
  name: N,
  config: AgentNodeAttestorConfigs[N],
  deps?: AgentAttestorDeps,
): Promise<AgentNodeAttestor>
export async function createAgentNodeAttestor(
  name: string,
  config: unknown,
  deps?: AgentAttestorDeps,
): Promise<AgentNodeAttestor>
export async function createAgentNodeAttestor(
  name: string,
  config: unknown,
  deps: AgentAttestorDeps = {},
): Promise<AgentNodeAttestor> {
  if (!Object.hasOwn(factories, name)) {
    throw new TypeError(
      `unknown node attestor ${JSON.stringify(String(name).slice(0, 40))} (known: ${agentNodeAttestorNames.join(', ')})`,
    )
  }
  if (deps.fetch !== undefined && typeof deps.fetch !== 'function')
    throw new TypeError('deps.fetch must be a function')
  return factories[name as AgentNodeAttestorName](config as never, deps)
}
