// Sealing of CA private keys at rest. The store only ever holds sealed keys; the key-encryption key
// (KEK) lives outside it: a 0600 file in the data dir by default, or an environment variable. The
// KeyManager interface is what the authority uses, so a KMS-backed implementation (AWS KMS Encrypt /
// Decrypt with an encryption context equal to `aad`) can replace the local one without other changes.

import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'

export interface KeyManager {
  /** An identifier of the KEK, recorded with every sealed blob so a wrong KEK is diagnosed as such. */
  readonly keyId: string
  /** Seals plaintext, binding it to `aad` (the record it belongs to): a blob moved to another record fails. */
  seal(plaintext: Buffer, aad: string): Promise<string>
  unseal(sealed: string, aad: string): Promise<Buffer>
}

export class KeyManagerError extends Error {
  override name = 'KeyManagerError'
}

const FORMAT = 'sigil-aes256gcm-v1'

/** AES-256-GCM with a 32-byte KEK held in memory. */
export class LocalKeyManager implements KeyManager {
  readonly keyId: string
  readonly #kek: Buffer

  constructor(kek: Buffer) {
    if (kek.length !== 32) throw new TypeError('the key-encryption key must be 32 bytes')
    this.#kek = Buffer.from(kek)
    this.keyId = createHash('sha256').update('sigil-kek-id').update(kek).digest('hex').slice(0, 16)
  }

  async seal(plaintext: Buffer, aad: string): Promise<string> {
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', this.#kek, iv)
    cipher.setAAD(Buffer.from(aad, 'utf8'))
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
    const tag = cipher.getAuthTag()
    return [
      FORMAT,
      this.keyId,
      iv.toString('base64url'),
      tag.toString('base64url'),
      body.toString('base64url'),
    ].join('.')
  }

  async unseal(sealed: string, aad: string): Promise<Buffer> {
    const parts = sealed.split('.')
    if (parts.length !== 5 || parts[0] !== FORMAT)
      throw new KeyManagerError('sealed key has an unknown format')
    const [, keyId, iv, tag, body] = parts as [string, string, string, string, string]
    if (keyId !== this.keyId) {
      throw new KeyManagerError(
        `sealed key was sealed with KEK ${keyId}, but this server has KEK ${this.keyId}; start it with the same SIGIL_KEK or kek file as the other servers sharing this store`,
      )
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#kek, Buffer.from(iv, 'base64url'))
      decipher.setAAD(Buffer.from(aad, 'utf8'))
      decipher.setAuthTag(Buffer.from(tag, 'base64url'))
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()])
    } catch (err) {
      throw new KeyManagerError('sealed key failed authentication (tampered, or bound to another record)', {
        cause: err,
      })
    }
  }
}

/**
 * Loads the KEK: from `configured` (base64 of 32 bytes, from SIGIL_KEK) when given, else from the file
 * `kek` in the data dir, created with mode 0600 on first use. Refuses a key file others can read.
 */
export function loadKek(dataDir: string, configured?: string): Buffer {
  if (configured) {
    const key = Buffer.from(configured, 'base64')
    if (key.length !== 32) {
      throw new KeyManagerError(
        'SIGIL_KEK must be 32 bytes in base64; create one with `openssl rand -base64 32`',
      )
    }
    return key
  }
  const file = path.join(dataDir, 'kek')
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    writeFileSync(file, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' })
  }
  const mode = statSync(file).mode & 0o777
  if (mode & 0o077) {
    throw new KeyManagerError(
      `key-encryption key file ${file} has mode ${mode.toString(8)}; run chmod 600 ${file}`,
    )
  }
  chmodSync(file, 0o600)
  return loadKek(dataDir, readFileSync(file, 'utf8').trim())
}
