import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { RedisStore } from './redis.ts'
import { SqliteStore } from './sqlite.ts'
import type { Store } from './store.ts'

const ACCEPTED =
  'sqlite:PATH (a file, relative to the working directory; sqlite: alone means sigil.db in the data dir), ' +
  'redis://[user:password@]host:port[/db] or rediss://...'

function sqlitePath(rest: string, dataDir: string | undefined): string {
  if (rest === ':memory:') return rest
  if (rest === '') {
    if (dataDir === undefined)
      throw new TypeError(`store URL sqlite: needs a path or a data dir; accepted: ${ACCEPTED}`)
    return path.join(path.resolve(dataDir), 'sigil.db')
  }
  return path.resolve(rest)
}

function create(url: string, dataDir: string | undefined): Store {
  if (url.startsWith('sqlite:')) {
    const file = sqlitePath(url.slice('sqlite:'.length), dataDir)
    if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true })
    return new SqliteStore(file)
  }
  if (url.startsWith('redis://') || url.startsWith('rediss://')) return new RedisStore(url)
  throw new TypeError(`unsupported store URL ${JSON.stringify(url)}; accepted: ${ACCEPTED}`)
}

/** Opens the store a URL names and brings its schema up to date. */
export async function openStore(url: string, opts: { dataDir?: string } = {}): Promise<Store> {
  const store = create(url, opts.dataDir)
  try {
    await store.migrate()
  } catch (err) {
    await store.close().catch(() => {})
    throw err
  }
  return store
}
