import { randomBytes } from 'node:crypto'
import { chmodSync, statSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { KeyManagerError, LocalKeyManager, loadKek } from '../../services/authority/key-manager.ts'
import { tempDir } from '../helpers/tools.ts'

t.test('seal and unseal, bound to the record', async (t) => {
  const km = new LocalKeyManager(randomBytes(32))
  const secret = randomBytes(100)
  const sealed = await km.seal(secret, 'root-ca:a.org:1')
  t.notOk(sealed.includes(secret.toString('base64')), 'ciphertext, not plaintext')
  t.same(await km.unseal(sealed, 'root-ca:a.org:1'), secret)
  await t.rejects(km.unseal(sealed, 'root-ca:b.org:1'), KeyManagerError, 'another record cannot use the blob')
  const tampered = sealed.slice(0, -3) + (sealed.endsWith('A') ? 'BBB' : 'AAA')
  await t.rejects(km.unseal(tampered, 'root-ca:a.org:1'), KeyManagerError)
  const other = new LocalKeyManager(randomBytes(32))
  await t.rejects(other.unseal(sealed, 'root-ca:a.org:1'), /same SIGIL_KEK/)
})

t.test('the KEK file is created 0600 and a readable one is refused', async (t) => {
  const dir = tempDir(t)
  const kek = loadKek(dir)
  t.equal(kek.length, 32)
  t.equal(statSync(path.join(dir, 'kek')).mode & 0o777, 0o600)
  t.same(loadKek(dir), kek, 'stable across loads')
  chmodSync(path.join(dir, 'kek'), 0o644)
  t.throws(() => loadKek(dir), /chmod 600/)
  t.throws(() => loadKek(dir, 'dG9vIHNob3J0'), /32 bytes/)
  const env = randomBytes(32).toString('base64')
  t.same(loadKek(dir, env), Buffer.from(env, 'base64'))
})
