// The attestation context as the agent service builds it, over a real (in-memory) SQLite store: join
// tokens are consumed and claims made by the store itself.

import type { NodeAttestationContext } from '../../../services/attestation/node/node-attestor.ts'
import { ManualClock } from '../../../services/clock.ts'
import { JoinTokenService } from '../../../services/registry/join-tokens.ts'
import { SqliteStore } from '../../../services/store/sqlite.ts'
import type { TrustDomainRecord } from '../../../services/store/store.ts'
import { rootCa, trustDomain } from '../../store/records.ts'

export interface TestContext {
  ctx: NodeAttestationContext
  clock: ManualClock
  store: SqliteStore
  td: TrustDomainRecord
  joinTokens: JoinTokenService
  /** The same context with another attestor configuration (same store and clock). */
  with(config: unknown): NodeAttestationContext
}

export async function attestationContext(
  t: { teardown(fn: () => unknown): void },
  opts: { config?: unknown; trustDomain?: string; fetch?: typeof fetch; now?: number } = {},
): Promise<TestContext> {
  const name = opts.trustDomain ?? 'example.org'
  const store = new SqliteStore(':memory:')
  await store.migrate()
  t.teardown(() => store.close())
  const td = trustDomain(name)
  await store.createTrustDomain(td, rootCa(name))
  const clock = new ManualClock(opts.now ?? Date.now())
  const joinTokens = new JoinTokenService(store, clock)
  const make = (config: unknown): NodeAttestationContext => ({
    trustDomain: name,
    config,
    clock,
    consumeJoinToken: (token) => joinTokens.consume(td, token),
    claimOnce: (key, expiresAt) => store.claimOnce(name, key, expiresAt, clock.now()),
    fetch: opts.fetch ?? fetch,
  })
  return { ctx: make(opts.config), clock, store, td, joinTokens, with: make }
}
