// azure_msi: asks the Azure IMDS for an access token of the VM's managed identity for the resource
// (audience) the trust domain expects.

import { unavailable } from '../errors.ts'
import { configObject, HTTP_URL, optionalString, stringOption, timeoutOption } from './config.ts'
import { metadataRequest } from './http.ts'
import type { AgentNodeAttestor } from './node-attestor.ts'

export const DEFAULT_AZURE_IMDS_URL = 'http://169.254.169.254'
const API_VERSION = '2018-02-01'

export interface AzureMsiAgentConfig {
  /** The resource to request the token for; the trust domain's tenant configuration names it as audience. */
  resource: string
  imdsUrl?: string
  /** A user-assigned identity's client id; the system-assigned identity when absent. */
  clientId?: string
  timeoutMs?: number
}

export function createAzureMsiAgentAttestor(
  config: AzureMsiAgentConfig,
  deps: { fetch?: typeof fetch } = {},
): AgentNodeAttestor {
  const obj = configObject('azure_msi', config, ['resource', 'imdsUrl', 'clientId', 'timeoutMs'])
  const resource = stringOption('azure_msi', obj, 'resource', { max: 512 })
  const base = stringOption('azure_msi', obj, 'imdsUrl', {
    default: DEFAULT_AZURE_IMDS_URL,
    pattern: HTTP_URL,
    hint: 'an http(s) URL',
  }).replace(/\/+$/, '')
  const clientId = optionalString('azure_msi', obj, 'clientId', {
    pattern: /^[0-9a-fA-F-]{36}$/,
    hint: 'a GUID',
  })
  const timeoutMs = timeoutOption('azure_msi', obj, 2_000)
  const fetchImpl = deps.fetch ?? fetch
  const query = new URLSearchParams({ 'api-version': API_VERSION, resource })
  if (clientId) query.set('client_id', clientId)
  const url = `${base}/metadata/identity/oauth2/token?${query}`
  return {
    name: 'azure_msi',
    async evidence() {
      const text = await metadataRequest(fetchImpl, url, 'azure_msi managed identity token', {
        headers: { metadata: 'true' },
        timeoutMs,
      })
      let token: unknown
      try {
        token = (JSON.parse(text) as { access_token?: unknown }).access_token
      } catch {
        token = undefined
      }
      if (typeof token !== 'string' || token.length === 0) {
        throw unavailable(`azure_msi: ${base} answered without an access_token`)
      }
      return { token }
    },
  }
}
