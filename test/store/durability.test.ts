// kill -9 tests: a child process writes through a store and reports each acknowledged write; it (or the
// Redis server under it) is killed mid-stream, and every acknowledged write must then be there, complete,
// with no half-written state around it.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { isDeepStrictEqual } from 'node:util'
import Database from 'better-sqlite3'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { canonicalSelectors } from '../../services/store/canonical.ts'
import { openStore } from '../../services/store/open.ts'
import type { AuditRecord, EntryRecord, Store } from '../../services/store/store.ts'
import { startRedis } from '../helpers/redis-server.ts'
import {
  agentIndex,
  entryId,
  isUpdated,
  patchedEntry,
  renewedAgent,
  TOKEN_COUNT,
  tokenHash,
  writtenAgent,
  writtenAudit,
  writtenEntry,
} from './fixtures/workload.ts'
import { joinToken, rootCa, trustDomain } from './records.ts'
import { redisIntegrityProblems } from './redis-integrity.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const WRITER = fileURLToPath(new URL('./fixtures/writer.ts', import.meta.url))
const TD = 'durable.test'
const KILL_AFTER_ACKS = 400
const WAIT_MS = 60_000

interface Acks {
  total: number
  entries: Set<number>
  updates: Set<number>
  consumed: Map<number, string>
  audit: Map<number, number>
  issues: number
  attests: Map<number, string>
  renewals: Map<number, string>
  errors: string[]
}

class Writer {
  readonly acks: Acks = {
    total: 0,
    entries: new Set(),
    updates: new Set(),
    consumed: new Map(),
    audit: new Map(),
    issues: 0,
    attests: new Map(),
    renewals: new Map(),
    errors: [],
  }
  readonly #child: ChildProcess
  readonly #closed: Promise<void>
  #stderr = ''
  #pending = ''
  #waiters: (() => void)[] = []

  constructor(url: string) {
    this.#child = spawn(process.execPath, ['--import', 'tsx', WRITER, url, TD], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.#child.stderr!.on('data', (chunk) => {
      this.#stderr = (this.#stderr + chunk).slice(-4000)
    })
    // Only complete lines count: a line cut by the kill was not acknowledged to anyone.
    this.#child.stdout!.on('data', (chunk) => {
      const lines = (this.#pending + chunk).split('\n')
      this.#pending = lines.pop()!
      for (const line of lines) this.#record(line)
      for (const wake of this.#waiters.splice(0)) wake()
    })
    this.#closed = new Promise((resolve) => this.#child.once('close', () => resolve()))
    void this.#closed.then(() => {
      for (const wake of this.#waiters.splice(0)) wake()
    })
  }

  #record(line: string): void {
    const [op, n, result = ''] = line.split(' ')
    const i = Number(n)
    const a = this.acks
    if (op === 'error') {
      a.errors.push(line)
      return
    }
    if (op === 'ready' || op === 'done') return
    a.total++
    if (op === 'entry') a.entries.add(i)
    else if (op === 'update') a.updates.add(i)
    else if (op === 'consume') a.consumed.set(i, result)
    else if (op === 'audit') a.audit.set(i, Number(result))
    else if (op === 'issue') a.issues++
    else if (op === 'attest') a.attests.set(i, result)
    else if (op === 'renew') a.renewals.set(i, result)
    else a.errors.push(`unexpected line: ${line}`)
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null
  }

  /** Resolves once `count` more acknowledgements arrived; rejects if the writer ends or time runs out. */
  async waitForAcks(count: number): Promise<void> {
    const target = this.acks.total + count
    const deadline = Date.now() + WAIT_MS
    while (this.acks.total < target) {
      if (!this.running) throw new Error(`writer exited early (${this.acks.total} acks):\n${this.#stderr}`)
      if (Date.now() > deadline)
        throw new Error(`writer made no progress (${this.acks.total} acks):\n${this.#stderr}`)
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve)
        setTimeout(resolve, 500)
      })
    }
  }

  /** SIGKILL, then wait until every line already in the pipe has been read. */
  async kill9(): Promise<void> {
    this.#child.kill('SIGKILL')
    await this.#closed
  }
}

async function prepare(url: string): Promise<void> {
  const store = await openStore(url)
  try {
    await store.createTrustDomain(trustDomain(TD), rootCa(TD))
    for (let i = 0; i < TOKEN_COUNT; i += 100) {
      const batch = Array.from({ length: Math.min(100, TOKEN_COUNT - i) }, (_, j) =>
        store.createJoinToken(joinToken(TD, tokenHash(i + j), Number.MAX_SAFE_INTEGER)),
      )
      await Promise.all(batch)
    }
  } finally {
    await store.close()
  }
}

async function allAudit(store: Store): Promise<AuditRecord[]> {
  const out: AuditRecord[] = []
  let before: number | undefined
  for (let page = 0; page < 10_000; page++) {
    const rows = await store.listAudit(TD, before === undefined ? { limit: 500 } : { limit: 500, before })
    out.push(...rows)
    if (rows.length < 500) break
    before = rows.at(-1)!.seq
  }
  return out
}

const same = isDeepStrictEqual

/**
 * `replays`: after a Redis restart the client resends commands that were in flight, so an update may
 * have been applied twice (a higher revision, same fields).
 */
function entryProblem(
  e: EntryRecord | undefined,
  i: number,
  acked: Acks,
  replays: boolean,
): string | undefined {
  if (!e) return acked.entries.has(i) ? `acknowledged entry ${i} is missing` : undefined
  const original = writtenEntry(TD, i)
  const patched = patchedEntry(TD, i)
  if (same(e, original)) {
    return acked.updates.has(i) ? `entry ${i}: acknowledged update is missing` : undefined
  }
  if (isUpdated(i)) {
    if (same(e, patched)) return undefined
    if (replays && e.revision > 2 && same({ ...e, revision: 2 }, patched)) return undefined
  }
  return `entry ${i} is neither as written nor as updated: ${JSON.stringify(e)}`
}

async function verify(t: Test, store: Store, acks: Acks, replays = false): Promise<void> {
  const problems: string[] = []
  const entries = await store.listEntries(TD)
  const byId = new Map(entries.map((e) => [e.id, e]))
  for (const i of acks.entries) {
    const problem = entryProblem(byId.get(entryId(i)), i, acks, replays)
    if (problem) problems.push(problem)
  }
  for (const e of entries) {
    const i = Number(e.id.slice(2))
    const problem = entryProblem(e, i, acks, replays)
    if (problem) problems.push(problem)
    const bySelector = await store.listEntries(TD, { selector: { type: 'unix', value: `uid:${i}` } })
    if (!same(bySelector, [e]))
      problems.push(`selector lookup of entry ${i} returns ${bySelector.map((x) => x.id)}`)
    const got = await store.getEntry(TD, e.id)
    if (!same(got, e)) problems.push(`get and list disagree on entry ${i}`)
  }
  const parents = await Promise.all(
    Array.from({ length: 7 }, (_, p) => store.listEntries(TD, { parentId: `spiffe://${TD}/agent/${p}` })),
  )
  if (parents.flat().length !== entries.length) problems.push('the parentId index disagrees with the entries')

  const tokens = new Set((await store.listJoinTokens(TD)).map((x) => x.tokenHash))
  for (const [i, result] of acks.consumed) {
    if (!replays && result !== 'ok') problems.push(`consume ${i} answered ${result}`)
    if (tokens.has(tokenHash(i))) problems.push(`acknowledged consumed token ${i} is still there`)
  }

  const records = await allAudit(store)
  const bySeq = new Map(records.map((r) => [r.seq, r]))
  if (bySeq.size !== records.length) problems.push('audit seqs repeat')
  for (const [i, seq] of acks.audit) {
    if (!same(bySeq.get(seq), { seq, ...writtenAudit(TD, i) })) {
      problems.push(`acknowledged audit ${i} (seq ${seq}) is ${JSON.stringify(bySeq.get(seq))}`)
    }
  }
  for (const r of records) {
    const i = Number(r.requestId.slice(4))
    if (!same(r, { seq: r.seq, ...writtenAudit(TD, i) }))
      problems.push(`audit record is incomplete: ${JSON.stringify(r)}`)
  }

  const issued = await store.countIssuances(TD, 0)
  if (issued < acks.issues) problems.push(`${issued} issuances recorded, ${acks.issues} acknowledged`)

  // After a Redis restart a resent attest may answer 'exists' and a resent renewal false: the first
  // send was applied. The stored record is what counts.
  const agents = new Map((await store.listAgents(TD)).map((a) => [agentIndex(a.spiffeId), a]))
  for (const [i, result] of acks.attests) {
    if (!agents.has(i)) problems.push(`acknowledged agent ${i} is missing`)
    if (!replays && result !== 'created') problems.push(`attest ${i} answered ${result}`)
  }
  for (const [i, result] of acks.renewals) {
    if (!replays && result !== 'true') problems.push(`renew ${i} answered ${result}`)
    if (!same(agents.get(i), renewedAgent(TD, i))) problems.push(`acknowledged renewal ${i} is missing`)
  }
  for (const [i, a] of agents) {
    if (!same(a, writtenAgent(TD, i)) && !same(a, renewedAgent(TD, i)))
      problems.push(`agent ${i} is neither as attested nor as renewed: ${JSON.stringify(a)}`)
  }

  t.ok(
    acks.entries.size > 0 && acks.audit.size > 0 && acks.renewals.size > 0,
    'the writer got writes acknowledged',
    {
      entries: acks.entries.size,
      updates: acks.updates.size,
      consumed: acks.consumed.size,
      audit: acks.audit.size,
      issues: acks.issues,
      attests: acks.attests.size,
      renewals: acks.renewals.size,
    },
  )
  t.strictSame(
    problems.slice(0, 20),
    [],
    'every acknowledged write is there, complete; nothing is half-written',
  )
}

function sqliteProblems(file: string): string[] {
  const db = new Database(file, { readonly: true })
  try {
    const problems: string[] = []
    const integrity = db.pragma('integrity_check', { simple: true })
    if (integrity !== 'ok') problems.push(`integrity_check: ${integrity}`)
    const fk = db.pragma('foreign_key_check') as unknown[]
    if (fk.length > 0) problems.push(`foreign_key_check: ${JSON.stringify(fk.slice(0, 5))}`)
    const rows = db.prepare('SELECT id, selectors, selector_key FROM entries').all() as {
      id: string
      selectors: string
      selector_key: string
    }[]
    const lookup = db.prepare(
      'SELECT type, value FROM entry_selectors WHERE entry_id = ? ORDER BY type, value',
    )
    for (const row of rows) {
      const selectors = JSON.parse(row.selectors) as { type: string; value: string }[]
      if (row.selector_key !== canonicalSelectors(selectors))
        problems.push(`entry ${row.id}: stale selector_key`)
      const indexed = lookup.all(row.id) as { type: string; value: string }[]
      if (canonicalSelectors(indexed) !== canonicalSelectors(selectors))
        problems.push(`entry ${row.id}: stale selector rows`)
    }
    return problems
  } finally {
    db.close()
  }
}

t.test('sqlite: kill -9 of the writer loses no acknowledged write', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sigil-durable-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'sigil.db')
  const url = `sqlite:${file}`
  await prepare(url)

  const writer = new Writer(url)
  t.teardown(() => writer.kill9())
  await writer.waitForAcks(KILL_AFTER_ACKS)
  await writer.kill9()

  const store = await openStore(url)
  t.teardown(() => store.close())
  await verify(t, store, writer.acks)
  t.strictSame(sqliteProblems(file), [], 'the database file is consistent')
})

t.test('redis: kill -9 of the writer loses no acknowledged write', async (t) => {
  const server = await startRedis(t)
  await prepare(server.url)

  const writer = new Writer(server.url)
  t.teardown(() => writer.kill9())
  await writer.waitForAcks(KILL_AFTER_ACKS)
  await writer.kill9()

  const store = await openStore(server.url)
  t.teardown(() => store.close())
  await verify(t, store, writer.acks)
  const redis = new Redis(server.url)
  t.teardown(() => redis.quit())
  t.strictSame(await redisIntegrityProblems(redis, 'sigil:'), [], 'the keyspace is consistent')
})

t.test('redis: kill -9 of redis-server under the writer loses no acknowledged write', async (t) => {
  const server = await startRedis(t)
  await prepare(server.url)

  const writer = new Writer(server.url)
  t.teardown(() => writer.kill9())
  await writer.waitForAcks(KILL_AFTER_ACKS)
  server.kill9()
  await new Promise((r) => setTimeout(r, 300))
  await server.restart()
  await writer.waitForAcks(KILL_AFTER_ACKS)
  await writer.kill9()
  t.comment(`writer errors around the restart: ${writer.acks.errors.length}`)

  const store = await openStore(server.url)
  t.teardown(() => store.close())
  await verify(t, store, writer.acks, true)
  const redis = new Redis(server.url)
  t.teardown(() => redis.quit())
  t.strictSame(await redisIntegrityProblems(redis, 'sigil:'), [], 'the keyspace is consistent')
})
