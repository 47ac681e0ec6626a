// Real headless Chromium (Debian's package) for the console's tests, driven by playwright-core. The
// browser trusts exactly the key the trust service presents, after Node has checked that the server's
// certificate chains to the installation's service CA (server-ca.pem): Chromium gets the SPKI pin of
// that certificate (--ignore-certificate-errors-spki-list), not a blanket "ignore HTTPS errors".

import { createHash, X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import tls from 'node:tls'
import { type Browser, chromium } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'

/** Fails (never skips) when Chromium is missing, saying how to install it. */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `chromium not found at ${CHROMIUM}: run \`npm run setup\` (it installs Debian's chromium package: apt-get install chromium)`,
    )
  }
}

/** The SPKI pin (base64 sha256 of the DER SubjectPublicKeyInfo) of the server's certificate, checked against the CA. */
export async function serverKeyPin(serverUrl: string, caPem: string): Promise<string> {
  const url = new URL(serverUrl)
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const socket = tls.connect({ host: url.hostname, port: Number(url.port), ca: caPem }, () => {
      resolve(socket.getPeerCertificate().raw)
      socket.end()
    })
    socket.on('error', reject)
  })
  const spki = new X509Certificate(raw).publicKey.export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(spki).digest('base64')
}

export async function launchChromium(
  t: { teardown(fn: () => unknown): void },
  serverUrl: string,
  caPem: string,
): Promise<Browser> {
  requireChromium()
  const pin = await serverKeyPin(serverUrl, caPem)
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
    args: ['--no-sandbox', `--ignore-certificate-errors-spki-list=${pin}`, '--disable-gpu'],
  })
  t.teardown(() => browser.close())
  return browser
}

/** Where screenshots go (test/artifacts is ignored by git; CI keeps it as the run's artifacts). */
export function artifactsDir(name: string): string {
  const dir = path.resolve(import.meta.dirname, '../artifacts', name)
  mkdirSync(dir, { recursive: true })
  return dir
}
