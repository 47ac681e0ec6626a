// join_token: presents the single-use token an admin handed to this node (`--join-token`).

import { configObject, stringOption } from './config.ts'
import type { AgentNodeAttestor } from './node-attestor.ts'

export interface JoinTokenAgentConfig {
  token: string
}

export function createJoinTokenAgentAttestor(config: JoinTokenAgentConfig): AgentNodeAttestor {
  const obj = configObject('join_token', config, ['token'])
  // The token stays in this closure: never in a property a logger could serialize.
  const token = stringOption('join_token', obj, 'token', {
    pattern: /^[\x21-\x7e]+$/,
    hint: 'printable ASCII',
    max: 512,
  })
  return {
    name: 'join_token',
    evidence: async () => ({ token }),
  }
}
