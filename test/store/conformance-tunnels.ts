// Conformance of tunnels; part of runStoreConformance (conformance.ts).
import type { Test } from 'tap'
import {
  StoreConflictError,
  StoreMissingTrustDomainError,
  type TunnelRecord,
} from '../../services/store/store.ts'
import type { Openers } from './conformance-agents.ts'

function tunnel(td: string, name: string, extra: Partial<TunnelRecord> = {}): TunnelRecord {
  return {
    trustDomain: td,
    name,
    spiffeId: `spiffe://${td}/${name}`,
    agent: `spiffe://${td}/sigil/agent/join_token/node`,
    service: name,
    createdAt: 1_700_000_000_000,
    ...extra,
  }
}

export function runTunnelConformance(t: Test, { withDomains }: Openers): void {
  t.test('tunnels: create, get, list, delete, isolation', async (t) => {
    const store = await withDomains(t)
    const db = tunnel('a.test', 'db', { port: 5432 })
    const web = tunnel('a.test', 'web')
    await store.createTunnel(web)
    await store.createTunnel(db)
    t.strictSame(await store.getTunnel('a.test', 'db'), db, 'every field as written, the port included')
    t.strictSame(await store.getTunnel('a.test', 'web'), web, 'no port when none was given')
    t.strictSame(await store.listTunnels('a.test'), [db, web], 'sorted by name')
    t.strictSame(await store.listTunnels('b.test'), [], "another trust domain sees none of a.test's")
    t.equal(await store.getTunnel('b.test', 'db'), undefined)
    await t.rejects(store.createTunnel(tunnel('a.test', 'db')), StoreConflictError, 'names are unique')
    await store.createTunnel(tunnel('b.test', 'db'))
    t.equal((await store.listTunnels('b.test')).length, 1, 'the same name in another trust domain')
    await t.rejects(store.createTunnel(tunnel('nope.test', 'db')), StoreMissingTrustDomainError)
    t.equal(await store.deleteTunnel('a.test', 'db'), true)
    t.equal(await store.deleteTunnel('a.test', 'db'), false, 'deleting twice')
    t.strictSame(await store.listTunnels('a.test'), [web])
    t.equal(await store.deleteTrustDomain('a.test'), true)
    t.strictSame(await store.listTunnels('a.test'), [], 'deleting the trust domain deletes its tunnels')
    t.equal((await store.listTunnels('b.test')).length, 1, "and not another's")
  })
}
