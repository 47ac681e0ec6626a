// The first start of an installation creates one admin token with an admin grant on every trust domain
// and writes it, mode 0600, to `admin.token` in the data dir. The token never goes into a log.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { Store } from '../store/store.ts'
import type { ApiTokenService } from './api-tokens.ts'

const META_KEY = 'bootstrap-admin-token'

export async function bootstrapAdminToken(
  store: Store,
  apiTokens: ApiTokenService,
  dataDir: string,
): Promise<{ created: boolean; file: string; present: boolean }> {
  const file = path.join(dataDir, 'admin.token')
  if (await store.getMeta(META_KEY)) return { created: false, file, present: existsSync(file) }
  // Create the token before claiming the bootstrap, so a crash in between leaves no installation
  // without an admin; a replica that loses the race revokes its own token.
  const { token, record } = await apiTokens.create(undefined, {
    name: 'bootstrap-admin',
    grants: [{ trustDomain: '*', role: 'admin' }],
  })
  if (!(await store.setMetaIfAbsent(META_KEY, record.id))) {
    await store.deleteApiToken(record.id)
    return { created: false, file, present: existsSync(file) }
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  writeFileSync(file, `${token}\n`, { mode: 0o600 })
  return { created: true, file, present: true }
}
