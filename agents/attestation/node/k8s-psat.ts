// k8s_psat: presents the pod's projected service account token, read fresh each time (the kubelet
// rotates it). The agent's pod mounts it with an audience the trust domain expects, e.g.
//   volumes: [{ name: sigil-token, projected: { sources: [{ serviceAccountToken:
//     { path: sigil-agent, audience: sigil, expirationSeconds: 3600 } }] } }]

import { readFile } from 'node:fs/promises'
import { unavailable } from '../errors.ts'
import { configObject, stringOption } from './config.ts'
import type { AgentNodeAttestor } from './node-attestor.ts'

export const DEFAULT_PSAT_PATH = '/var/run/secrets/tokens/sigil-agent'
const MAX_TOKEN = 16 * 1024

export interface K8sPsatAgentConfig {
  /** The cluster's name in the trust domain's k8s_psat configuration. */
  cluster: string
  tokenPath?: string
}

export function createK8sPsatAgentAttestor(config: K8sPsatAgentConfig): AgentNodeAttestor {
  const obj = configObject('k8s_psat', config, ['cluster', 'tokenPath'])
  const cluster = stringOption('k8s_psat', obj, 'cluster', {
    pattern: /^[A-Za-z0-9._-]{1,63}$/,
    hint: 'a cluster name',
  })
  const tokenPath = stringOption('k8s_psat', obj, 'tokenPath', { default: DEFAULT_PSAT_PATH })
  return {
    name: 'k8s_psat',
    async evidence() {
      let token: string
      try {
        token = (await readFile(tokenPath, 'utf8')).trim()
      } catch (err) {
        throw unavailable(
          `k8s_psat: cannot read the service account token at ${tokenPath} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); mount a projected token there`,
          err,
        )
      }
      if (token.length === 0 || token.length > MAX_TOKEN) {
        throw unavailable(`k8s_psat: ${tokenPath} does not hold a service account token`)
      }
      return { cluster, token }
    },
  }
}
