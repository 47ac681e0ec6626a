// kill -9 the trust service (and, for Redis, the Redis server) while it is writing; after a restart,
// nothing acknowledged is lost and nothing is half-written.

import { randomBytes } from 'node:crypto'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { ApiClient } from '../../services/cli/client.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { type ServerProcessOptions, startServerProcess } from '../helpers/server-process.ts'
import { tempDir } from '../helpers/tools.ts'

interface Acked {
  id: string
  spiffeId: string
  selectors: string[]
}

async function writeUntilKilled(client: ApiClient, kill: () => void, target: number): Promise<Acked[]> {
  const acked: Acked[] = []
  let n = 0
  let killed = false
  const worker = async () => {
    while (!killed && n < target * 3) {
      const i = n++
      const body = {
        spiffeId: `spiffe://example.org/w/${i}`,
        parentId: 'spiffe://example.org/sigil/server',
        selectors: [`unix:uid:${i}`, 'k8s:ns:prod'],
      }
      try {
        const res = await client.request<Acked>('POST', '/v1/trust-domains/example.org/entries', body)
        acked.push({ id: res.id, spiffeId: res.spiffeId, selectors: res.selectors })
        if (acked.length === target && !killed) {
          killed = true
          kill()
        }
      } catch {
        return // the server is gone: this write was never acknowledged
      }
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  return acked
}

async function verify(t: Test, client: ApiClient, acked: Acked[]) {
  const { entries } = await client.request<{ entries: Acked[] }>(
    'GET',
    '/v1/trust-domains/example.org/entries',
  )
  const byId = new Map(entries.map((e) => [e.id, e]))
  const lost = acked.filter((a) => {
    const e = byId.get(a.id)
    return !e || e.spiffeId !== a.spiffeId || JSON.stringify(e.selectors) !== JSON.stringify(a.selectors)
  })
  t.same(lost, [], `all ${acked.length} acknowledged entries survived intact`)
  const broken = entries.filter(
    (e) => !/^spiffe:\/\/example\.org\/w\/\d+$/.test(e.spiffeId) || e.selectors.length !== 2,
  )
  t.same(broken, [], 'no half-written entry')
  const { events } = await client.request<{ events: Array<{ action: string; result: string }> }>(
    'GET',
    '/v1/trust-domains/example.org/audit?limit=1000',
  )
  const audited = events.filter((e) => e.action === 'entry.create' && e.result === 'ok').length
  t.ok(
    audited >= acked.length,
    `every acknowledged write has its audit record (${audited} >= ${acked.length})`,
  )
}

async function scenario(
  t: Test,
  opts: ServerProcessOptions,
  store?: { kill9(): void; restart(): Promise<void> },
) {
  const first = await startServerProcess(t, opts)
  const client = first.client()
  await client.request('POST', '/v1/trust-domains', { name: 'example.org' })
  const acked = await writeUntilKilled(
    client,
    () => {
      first.kill9()
      store?.kill9()
    },
    150,
  )
  client.close()
  await new Promise((r) =>
    first.proc.exitCode !== null || first.proc.signalCode ? r(null) : first.proc.once('exit', r),
  )
  t.ok(acked.length >= 150, `${acked.length} writes acknowledged before kill -9`)
  if (store) await store.restart()
  const second = await startServerProcess(t, opts)
  const after = second.client()
  await verify(t, after, acked)
  const more = await after.request<{ id: string }>('POST', '/v1/trust-domains/example.org/entries', {
    spiffeId: 'spiffe://example.org/after',
    parentId: 'spiffe://example.org/sigil/server',
    selectors: ['unix:uid:1'],
  })
  t.ok(more.id, 'the restarted server takes writes')
  after.close()
}

t.test('SQLite: kill -9 the server mid-write', async (t) => {
  const dir = tempDir(t)
  await scenario(t, { dataDir: path.join(dir, '.sigil') })
})

t.test('Redis: kill -9 the server and redis-server mid-write', async (t) => {
  const redis = await startRedis(t)
  const dir = tempDir(t)
  const env = { SIGIL_KEK: randomBytes(32).toString('base64') }
  await scenario(t, { dataDir: path.join(dir, '.sigil'), store: redis.url, env }, redis)
})
