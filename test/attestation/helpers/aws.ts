// AWS instance identity material made the way AWS makes it, with our own keys: DSA and RSA signer
// certificates (openssl), PKCS#7 signatures (openssl smime/cms) and base64 RSA-SHA256 signatures, and
// an IMDSv2 on loopback that serves them only to requests carrying a session token.

import { execFileSync } from 'node:child_process'
import { generateKeyPairSync, sign } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { requireTool } from '../../helpers/tools.ts'
import { json, startServer } from './http-server.ts'

export interface Signer {
  certPath: string
  keyPath: string
  certPem: string
  keyPem: string
}

function openssl(args: string[], input?: string | Buffer): Buffer {
  requireTool('openssl', 'apt-get install openssl')
  return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] })
}

/** A self-signed signer like AWS's per-region certificates (DSA for PKCS#7, RSA for the signature). */
export function makeSigner(
  dir: string,
  name: string,
  type: 'dsa' | 'rsa',
  opts: { days?: number; serialHex?: string; commonName?: string } = {},
): Signer {
  const { privateKey } =
    type === 'dsa'
      ? generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 })
      : generateKeyPairSync('rsa', { modulusLength: 2048 })
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  const keyPath = path.join(dir, `${name}.key`)
  const certPath = path.join(dir, `${name}.pem`)
  writeFileSync(keyPath, keyPem)
  const args = [
    'req',
    '-x509',
    '-new',
    '-key',
    keyPath,
    '-subj',
    `/C=US/O=Test AWS/CN=${opts.commonName ?? name}`,
    '-days',
    String(opts.days ?? 2),
  ]
  if (opts.serialHex) args.push('-set_serial', `0x${opts.serialHex}`)
  openssl([...args, '-sha256', '-out', certPath])
  return { certPath, keyPath, certPem: readFileSync(certPath, 'utf8'), keyPem }
}

/** Signs with an existing certificate and key (PEM files), e.g. one issued by a test CA. */
export function signerFromPem(dir: string, name: string, certPem: string, keyPem: string): Signer {
  const certPath = path.join(dir, `${name}.pem`)
  const keyPath = path.join(dir, `${name}.key`)
  writeFileSync(certPath, certPem)
  writeFileSync(keyPath, keyPem)
  return { certPath, keyPath, certPem, keyPem }
}

/** PKCS#7 SignedData over the document, base64 with line breaks as IMDS serves it. */
export function signPkcs7(
  dir: string,
  document: string,
  signer: Signer,
  opts: { md?: 'sha1' | 'sha256'; embedCert?: boolean; keyId?: boolean; noAttributes?: boolean } = {},
): string {
  const docPath = path.join(dir, `doc-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(docPath, document)
  const args = ['cms', '-sign', '-binary', '-nodetach', '-md', opts.md ?? 'sha1', '-in', docPath]
  args.push('-signer', signer.certPath, '-inkey', signer.keyPath, '-outform', 'DER')
  if (!opts.embedCert) args.push('-nocerts')
  if (opts.keyId) args.push('-keyid')
  if (opts.noAttributes) args.push('-noattr')
  const der = openssl(args)
  return der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')
}

export function signRsa(document: string, signer: Signer): string {
  return sign('sha256', Buffer.from(document), signer.keyPem).toString('base64')
}

export function identityDocument(overrides: Record<string, unknown> = {}): string {
  const doc = {
    accountId: '123456789012',
    architecture: 'x86_64',
    availabilityZone: 'us-east-1b',
    billingProducts: null,
    devpayProductCodes: null,
    marketplaceProductCodes: null,
    imageId: 'ami-12c6146b',
    instanceId: 'i-0a1b2c3d4e5f60718',
    instanceType: 't3.micro',
    kernelId: null,
    pendingTime: '2024-05-01T12:00:00Z',
    privateIp: '10.0.0.12',
    ramdiskId: null,
    region: 'us-east-1',
    version: '2017-09-30',
    ...overrides,
  }
  return JSON.stringify(doc, null, 2)
}

/** IMDSv2: PUT /latest/api/token, then GETs with the session token; anything else is refused. */
export async function startImds(
  t: { teardown(fn: () => unknown): void },
  files: { document: string; pkcs7?: string; signature?: string },
) {
  const session = 'imds-session-token'
  return startServer(t, (req, res) => {
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return json(res, 400, {})
      res.end(session)
      return
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== session) {
      res.statusCode = 401
      return res.end()
    }
    const name = req.url?.replace('/latest/dynamic/instance-identity/', '') as keyof typeof files
    const body = files[name]
    if (req.method !== 'GET' || body === undefined) {
      res.statusCode = 404
      return res.end()
    }
    res.setHeader('content-type', 'text/plain')
    res.end(body)
  })
}
