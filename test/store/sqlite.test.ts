import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import t, { type Test } from 'tap'
import { SqliteStore } from '../../services/store/sqlite.ts'
import { applyMigrations, migrations } from '../../services/store/sqlite-migrations.ts'
import { runStoreConformance } from './conformance.ts'
import { entry, joinToken, policy, rootCa, trustDomain } from './records.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const MIGRATE = fileURLToPath(new URL('./fixtures/migrate.ts', import.meta.url))

function tempFile(t: Test): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sigil-sqlite-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return path.join(dir, 'sigil.db')
}

runStoreConformance(t, async () => new SqliteStore(':memory:'))

t.test('a file store uses WAL and keeps its data across reopen', async (t) => {
  const file = tempFile(t)
  const first = new SqliteStore(file)
  await first.migrate()
  await first.createTrustDomain(trustDomain('a.test'), rootCa('a.test'))
  await first.createEntry(entry('a.test', 'e1'))
  await first.close()

  const raw = new Database(file, { readonly: true })
  t.equal(raw.pragma('journal_mode', { simple: true }), 'wal', 'journal_mode is WAL')
  t.strictSame(
    raw.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all(),
    migrations.map((m) => ({ version: m.version, name: m.name })),
    'every migration is recorded once',
  )
  raw.close()

  const second = new SqliteStore(file)
  t.teardown(() => second.close())
  await second.migrate()
  t.strictSame(await second.getEntry('a.test', 'e1'), entry('a.test', 'e1'), 'data survives reopen')
})

t.test('migrate is safe from several processes at once', async (t) => {
  const file = tempFile(t)
  const startAt = Date.now() + 2_000
  const runs = Array.from(
    { length: 4 },
    () =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', MIGRATE, file, String(startAt)], {
          cwd: ROOT,
          stdio: ['ignore', 'pipe', 'pipe'],
        })
        let out = ''
        child.stdout.on('data', (c) => {
          out += c
        })
        child.stderr.on('data', (c) => {
          out += c
        })
        child.on('close', (code) => resolve({ code, out }))
      }),
  )
  const results = await Promise.all(runs)
  t.strictSame(
    results.map((r) => r.code),
    [0, 0, 0, 0],
    'every process migrated and wrote',
    { output: results.map((r) => r.out) },
  )
  const store = new SqliteStore(file)
  t.teardown(() => store.close())
  t.equal((await store.listTrustDomains()).length, 4, 'all four writes landed')
  const raw = new Database(file, { readonly: true })
  t.teardown(() => raw.close())
  t.equal(
    raw.prepare('SELECT count(*) FROM schema_migrations').pluck().get(),
    migrations.length,
    'each migration applied exactly once',
  )
})

t.test('migrations: ordering and newer schemas', async (t) => {
  const db = new Database(':memory:')
  t.teardown(() => db.close())
  t.ok(
    migrations.every((m, i) => i === 0 || m.version > migrations[i - 1]!.version),
    'the shipped list is strictly ordered',
  )
  t.throws(
    () =>
      applyMigrations(db, [
        { version: 2, name: 'b', up: '' },
        { version: 1, name: 'a', up: '' },
      ]),
    /strictly ordered/,
    'an unordered list is refused',
  )
  t.strictSame(
    applyMigrations(db),
    migrations.map((m) => m.version),
    'applies everything to an empty db',
  )
  t.strictSame(applyMigrations(db), [], 'and nothing the second time')

  const file = tempFile(t)
  const store = new SqliteStore(file)
  t.teardown(() => store.close())
  await store.migrate()
  const raw = new Database(file)
  raw.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)").run()
  raw.close()
  await t.rejects(store.migrate(), /newer than this build supports/, 'a newer schema is refused')

  const failing = new Database(':memory:')
  t.teardown(() => failing.close())
  t.throws(() =>
    applyMigrations(failing, [
      { version: 1, name: 'ok', up: 'CREATE TABLE x (a INTEGER)' },
      { version: 2, name: 'broken', up: 'CREATE TABLE x (a INTEGER)' },
    ]),
  )
  t.equal(
    failing
      .prepare("SELECT count(*) FROM sqlite_master WHERE name IN ('x', 'schema_migrations')")
      .pluck()
      .get(),
    0,
    'a failing migration rolls back the whole run',
  )
})

t.test('a join token is single use across connections', async (t) => {
  const file = tempFile(t)
  const stores = Array.from({ length: 4 }, () => new SqliteStore(file))
  t.teardown(() => Promise.all(stores.map((s) => s.close())))
  await stores[0]!.migrate()
  await stores[0]!.createTrustDomain(trustDomain('a.test'), rootCa('a.test'))
  await stores[0]!.createJoinToken(joinToken('a.test', 'h', 10_000))
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) => stores[i % 4]!.consumeJoinToken('a.test', 'h', 1)),
  )
  t.equal(results.filter((r) => r.ok).length, 1, 'exactly one connection consumed it')
})

t.test('a policy version is written once across connections', async (t) => {
  const file = tempFile(t)
  const stores = Array.from({ length: 4 }, () => new SqliteStore(file))
  t.teardown(() => Promise.all(stores.map((s) => s.close())))
  await stores[0]!.migrate()
  await stores[0]!.createTrustDomain(trustDomain('a.test'), rootCa('a.test'))
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => stores[i % 4]!.putPolicy(policy('a.test', 1, { text: `w${i}` }), 0)),
  )
  t.equal(results.filter(Boolean).length, 1, 'exactly one connection stored version 1')
  t.equal((await stores[3]!.listPolicyVersions('a.test', 10)).length, 1)
})
