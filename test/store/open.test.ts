import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { openStore } from '../../services/store/open.ts'

function tempDir(t: Test): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sigil-open-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('sqlite:PATH is relative to the working directory', async (t) => {
  const dir = tempDir(t)
  const cwd = process.cwd()
  process.chdir(dir)
  t.teardown(() => process.chdir(cwd))
  const store = await openStore('sqlite:data/sub/sigil.db', { dataDir: '/nonexistent' })
  t.teardown(() => store.close())
  t.equal(store.kind, 'sqlite')
  t.ok(existsSync(path.join(dir, 'data/sub/sigil.db')), 'the file (and its directory) was created')
  t.strictSame(await store.listTrustDomains(), [], 'and migrated')
})

t.test('sqlite: alone means sigil.db in the data dir', async (t) => {
  const dir = tempDir(t)
  const store = await openStore('sqlite:', { dataDir: path.join(dir, 'state') })
  t.teardown(() => store.close())
  t.ok(existsSync(path.join(dir, 'state', 'sigil.db')))
  await t.rejects(openStore('sqlite:'), TypeError, 'without a data dir it is an error')
})

t.test('sqlite::memory:', async (t) => {
  const store = await openStore('sqlite::memory:')
  t.teardown(() => store.close())
  await store.ping()
  t.equal(store.kind, 'sqlite')
})

t.test('anything else is refused with the accepted forms', async (t) => {
  for (const url of [
    '',
    'postgres://localhost/sigil',
    'redis:/localhost',
    'http://x',
    'SQLITE:x.db',
    '/tmp/x.db',
  ]) {
    await t.rejects(
      openStore(url),
      { name: 'TypeError', message: /accepted: sqlite:PATH.*redis:\/\/.*rediss:\/\//s },
      JSON.stringify(url),
    )
  }
})
