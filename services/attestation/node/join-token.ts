// join_token: the agent presents a single-use token an admin created (`sigil token create`). The
// token store consumes it atomically, so of two agents racing with one token exactly one attests.

import { createHash } from 'node:crypto'
import { AttestationError } from '../errors.ts'
import { evidenceObject, requiredString } from './evidence.ts'
import type { NodeAttestationContext, NodeAttestationStep } from './node-attestor.ts'
import type { RegisteredAttestor } from './registry.ts'
import { agentId, Selectors } from './result.ts'

const NAME = 'join_token'
const TOKEN = /^[\x21-\x7e]+$/

export function createJoinTokenAttestor(): RegisteredAttestor {
  return {
    name: NAME,
    configSchema: undefined,
    validateConfig(raw) {
      if (raw !== undefined && raw !== null && !(typeof raw === 'object' && Object.keys(raw).length === 0)) {
        throw new AttestationError(
          'ATTESTATION_CONFIG_INVALID',
          'nodeAttestors.join_token takes no configuration; join tokens are created with `sigil token create`',
        )
      }
    },
    async attest(
      evidence: unknown,
      ctx: NodeAttestationContext,
      round?: unknown,
    ): Promise<NodeAttestationStep> {
      if (round !== undefined) throw new TypeError('join_token has a single round')
      const obj = evidenceObject(NAME, evidence, ['token'])
      const token = requiredString(NAME, obj, 'token', {
        max: 512,
        pattern: TOKEN,
        patternHint: 'printable ASCII',
      })
      const record = await ctx.consumeJoinToken(token)
      // The store keeps sha256(token); its first 128 bits name the agent without revealing the token.
      const id = (record.tokenHash || createHash('sha256').update(token, 'utf8').digest('hex')).slice(0, 32)
      return {
        done: true,
        result: {
          agentId: record.spiffeId ?? agentId(ctx.trustDomain, NAME, id),
          selectors: new Selectors(NAME).add('token', id).list,
          canReattest: false,
        },
      }
    },
  }
}
