// Single use of a node's identity (trust on first use) or of one piece of evidence.

import { AttestationError } from '../errors.ts'
import type { NodeAttestationContext } from './node-attestor.ts'

/** The largest time a Date can hold: a claim that never lapses. */
export const FOREVER = 8_640_000_000_000_000

/** Claims `key` until `expiresAt`; a second claim fails with ATTESTATION_REPLAYED and `message`. */
export async function claimOnce(
  ctx: NodeAttestationContext,
  key: string,
  expiresAt: number,
  message: string,
): Promise<void> {
  if (!(await ctx.claimOnce(key, expiresAt))) throw new AttestationError('ATTESTATION_REPLAYED', message)
}
