import { generateKeyPairSync, webcrypto } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { Command } from 'commander'
import { x509 } from '../../authority/x509-lib.ts'
import { client, collect, duration, enc, output, UsageError } from '../context.ts'

function trustDomainOf(spiffeId: string): string {
  const match = /^spiffe:\/\/([^/]+)(\/.*)?$/.exec(spiffeId)
  if (!match)
    throw new UsageError(
      `--spiffe-id ${JSON.stringify(spiffeId)} is not a SPIFFE ID (spiffe://TRUST_DOMAIN/path)`,
    )
  return match[1]!
}

export function svidCommands(program: Command): void {
  const svid = program
    .command('svid')
    .description('Mint SVIDs directly (for tests and workloads without an agent)')
  const mint = svid.command('mint').description('Mint an X509-SVID or a JWT-SVID')

  mint
    .command('x509')
    .description(
      'Generate a key here, have the server sign an X509-SVID, write svid.pem, svid.key, bundle.pem',
    )
    .requiredOption('--spiffe-id <id>', 'the SPIFFE ID')
    .option('--ttl <dur>', 'lifetime, e.g. 1h')
    .option('--dns <name>', 'a DNS SAN (repeatable)', collect)
    .requiredOption('--out <dir>', 'directory for svid.pem, svid.key (mode 0600) and bundle.pem')
    .action(async (opts: { spiffeId: string; ttl?: string; dns?: string[]; out: string }, cmd: Command) => {
      const td = trustDomainOf(opts.spiffeId)
      const api = client(cmd)
      // The private key is written to disk only because this command exists to do exactly that.
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
      const signingKey = await webcrypto.subtle.importKey(
        'pkcs8',
        privateKey.export({ format: 'der', type: 'pkcs8' }),
        alg,
        false,
        ['sign'],
      )
      const verifyKey = await webcrypto.subtle.importKey(
        'spki',
        publicKey.export({ format: 'der', type: 'spki' }),
        alg,
        true,
        ['verify'],
      )
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        name: 'O=Sigil',
        keys: { privateKey: signingKey, publicKey: verifyKey },
        signingAlgorithm: alg,
      })
      const body: Record<string, unknown> = { csr: csr.toString('pem'), spiffeId: opts.spiffeId }
      if (opts.ttl) body.ttl = duration(opts.ttl, '--ttl')
      if (opts.dns) body.dnsNames = opts.dns
      const res = await api.request<{
        spiffeId: string
        serial: string
        expiresAt: string
        certChainPem: string
      }>('POST', `/v1/trust-domains/${enc(td)}/svids/x509`, body)
      const bundle = await api.request<string>('GET', `/v1/trust-domains/${enc(td)}/bundle?format=pem`)
      mkdirSync(opts.out, { recursive: true })
      const files = {
        svid: path.join(opts.out, 'svid.pem'),
        key: path.join(opts.out, 'svid.key'),
        bundle: path.join(opts.out, 'bundle.pem'),
      }
      writeFileSync(files.svid, res.certChainPem)
      writeFileSync(files.key, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
      writeFileSync(files.bundle, bundle)
      output(cmd, { ...res, files }, () =>
        [
          `SVID for ${res.spiffeId} (serial ${res.serial}) expires ${res.expiresAt}`,
          `wrote ${files.svid}, ${files.key}, ${files.bundle}`,
        ].join('\n'),
      )
    })

  mint
    .command('jwt')
    .description('Have the server sign a JWT-SVID and print it')
    .requiredOption('--spiffe-id <id>', 'the SPIFFE ID (the sub claim)')
    .requiredOption('--audience <aud>', 'an audience (repeatable)', collect)
    .option('--ttl <dur>', 'lifetime, e.g. 5m')
    .action(async (opts: { spiffeId: string; audience: string[]; ttl?: string }, cmd: Command) => {
      const td = trustDomainOf(opts.spiffeId)
      const body: Record<string, unknown> = { spiffeId: opts.spiffeId, audience: opts.audience }
      if (opts.ttl) body.ttl = duration(opts.ttl, '--ttl')
      const res = await client(cmd).request<{ token: string; expiresAt: string }>(
        'POST',
        `/v1/trust-domains/${enc(td)}/svids/jwt`,
        body,
      )
      output(cmd, res, () => res.token)
    })
}

export function bundleCommands(program: Command): void {
  const bundle = program.command('bundle').description('Trust domain bundles')
  bundle
    .command('show')
    .description('Print the trust domain bundle')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .option('--format <format>', 'pem or spiffe (a JWK Set)', 'pem')
    .action(async (opts: { trustDomain: string; format: string }, cmd: Command) => {
      if (opts.format !== 'pem' && opts.format !== 'spiffe')
        throw new UsageError('--format must be pem or spiffe')
      const api = client(cmd)
      if (opts.format === 'pem') {
        const pem = await api.request<string>(
          'GET',
          `/v1/trust-domains/${enc(opts.trustDomain)}/bundle?format=pem`,
        )
        output(cmd, { trustDomain: opts.trustDomain, pem }, () => pem)
      } else {
        const res = await api.request(
          'GET',
          `/v1/trust-domains/${enc(opts.trustDomain)}/bundle?format=spiffe`,
        )
        output(cmd, res, () => JSON.stringify(res, null, 2))
      }
    })
}
