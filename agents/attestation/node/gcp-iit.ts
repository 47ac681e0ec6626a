// gcp_iit: asks the GCE metadata server for an instance identity token for the trust domain's
// audience, in the full format (with the google.compute_engine claims).

import { configObject, HTTP_URL, stringOption, timeoutOption } from './config.ts'
import { metadataRequest } from './http.ts'
import type { AgentNodeAttestor } from './node-attestor.ts'

export const DEFAULT_GCE_METADATA_URL = 'http://metadata.google.internal'

export interface GcpIitAgentConfig {
  audience: string
  metadataUrl?: string
  serviceAccount?: string
  timeoutMs?: number
}

export function createGcpIitAgentAttestor(
  config: GcpIitAgentConfig,
  deps: { fetch?: typeof fetch } = {},
): AgentNodeAttestor {
  const obj = configObject('gcp_iit', config, ['audience', 'metadataUrl', 'serviceAccount', 'timeoutMs'])
  const audience = stringOption('gcp_iit', obj, 'audience', { max: 512 })
  const base = stringOption('gcp_iit', obj, 'metadataUrl', {
    default: DEFAULT_GCE_METADATA_URL,
    pattern: HTTP_URL,
    hint: 'an http(s) URL',
  }).replace(/\/+$/, '')
  const account = stringOption('gcp_iit', obj, 'serviceAccount', {
    default: 'default',
    pattern: /^[A-Za-z0-9@._-]+$/,
    hint: 'a service account email or "default"',
  })
  const timeoutMs = timeoutOption('gcp_iit', obj, 2_000)
  const fetchImpl = deps.fetch ?? fetch
  const url = `${base}/computeMetadata/v1/instance/service-accounts/${account}/identity?audience=${encodeURIComponent(audience)}&format=full`
  return {
    name: 'gcp_iit',
    async evidence() {
      const token = await metadataRequest(fetchImpl, url, 'gcp_iit instance identity token', {
        headers: { 'metadata-flavor': 'Google' },
        timeoutMs,
      })
      return { token: token.trim() }
    },
  }
}
