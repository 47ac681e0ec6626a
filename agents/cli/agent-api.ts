// `sigil agent api ...`: the Workload API seen from a workload, like `spire-agent api`. The caller is
// this CLI process, so it gets exactly what a workload with its selectors would get.

import { X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { Command } from 'commander'
import { derToPem } from '../../services/authority/pem.ts'
import { ApiError } from '../../services/cli/client.ts'
import { collect, output, UsageError } from '../../services/cli/context.ts'
import { grpcStatusName, WorkloadApiClient } from '../workload-api/client.ts'
import { resolveSocketPath, SocketPathError } from '../workload-api/socket-path.ts'

const SOCKET_HELP = 'Workload API socket (default: $SPIFFE_ENDPOINT_SOCKET, else /run/sigil/agent.sock)'

/** Registers `api` under the `agent` command (given, or found or made under the program given). */
export function agentApiCommands(parent: Command): void {
  const agent =
    parent.name() === 'agent'
      ? parent
      : (parent.commands.find((c) => c.name() === 'agent') ??
        parent.command('agent').description('The node agent and its Workload API'))
  const api = agent.command('api').description('Call the local Workload API as a workload')
  const fetch = api.command('fetch').description('Fetch an X509-SVID or a JWT-SVID')

  fetch
    .command('x509')
    .description("Fetch this process's X509-SVIDs; --write saves svid.N.pem, svid.N.key (0600), bundle.N.pem")
    .option('--socket <path>', SOCKET_HELP)
    .option('--write <dir>', 'write the SVIDs, their keys and bundles to this directory')
    .action((opts: { socket?: string; write?: string }, cmd: Command) =>
      withClient(opts.socket, async (client) => {
        const started = Date.now()
        const res = await client.fetchX509Svid()
        const elapsedMs = Date.now() - started
        const svids = res.svids.map((s, i) => {
          const leaf = new X509Certificate(firstCertificate(s.x509_svid))
          return {
            index: i,
            spiffeId: s.spiffe_id,
            hint: s.hint,
            serial: leaf.serialNumber.toLowerCase(),
            notBefore: new Date(leaf.validFrom).toISOString(),
            expiresAt: new Date(leaf.validTo).toISOString(),
          }
        })
        const federatedBundles = Object.keys(res.federated_bundles)
        let files: string[] | undefined
        if (opts.write) files = writeX509(opts.write, res)
        output(cmd, { svids, federatedBundles, elapsedMs, ...(files ? { files } : {}) }, () =>
          [
            `received ${svids.length} X509-SVID${svids.length === 1 ? '' : 's'} after ${elapsedMs}ms`,
            ...svids.map(
              (s) => `SPIFFE ID: ${s.spiffeId}${s.hint ? ` (hint ${s.hint})` : ''}  expires ${s.expiresAt}`,
            ),
            ...(federatedBundles.length ? [`federated bundles: ${federatedBundles.join(', ')}`] : []),
            ...(files ? [`wrote ${files.join(', ')}`] : []),
          ].join('\n'),
        )
      }),
    )

  fetch
    .command('jwt')
    .description('Fetch JWT-SVIDs for an audience (prints the token; "SPIFFE_ID TOKEN" lines for several)')
    .requiredOption('--audience <aud>', 'an audience (repeatable)', collect)
    .option('--spiffe-id <id>', "only this identity's JWT-SVID")
    .option('--socket <path>', SOCKET_HELP)
    .action((opts: { audience: string[]; spiffeId?: string; socket?: string }, cmd: Command) =>
      withClient(opts.socket, async (client) => {
        const res = await client.fetchJwtSvid(opts.audience, opts.spiffeId)
        const svids = res.svids.map((s) => ({
          spiffeId: s.spiffe_id,
          hint: s.hint,
          token: s.svid,
          expiresAt: jwtExpiry(s.svid),
        }))
        output(cmd, { svids }, () =>
          svids.length === 1 ? svids[0]!.token : svids.map((s) => `${s.spiffeId} ${s.token}`).join('\n'),
        )
      }),
    )

  api
    .command('validate')
    .description('Validate a credential through the Workload API')
    .command('jwt')
    .description('Validate a JWT-SVID for an audience; exits 1 when it is not valid')
    .requiredOption('--audience <aud>', 'the audience the token must carry')
    .option('--token <jwt>', 'the JWT-SVID (required)')
    .option('--socket <path>', SOCKET_HELP)
    .action((opts: { audience: string; socket?: string }, cmd: Command) => {
      // The program's global --token (an API token) takes the flag wherever it appears, so read the
      // merged options: here --token can only mean the JWT-SVID.
      const token = (cmd.optsWithGlobals() as { token?: string }).token
      if (!token) throw new UsageError('--token is required: the JWT-SVID to validate')
      return withClient(opts.socket, async (client) => {
        const res = await client.validateJwtSvid(opts.audience, token)
        output(cmd, res, () => `valid JWT-SVID for ${res.spiffeId}`)
      })
    })
}

async function withClient(socket: string | undefined, run: (client: WorkloadApiClient) => Promise<void>) {
  let socketPath: string
  try {
    socketPath = resolveSocketPath(socket, process.env)
  } catch (err) {
    if (err instanceof SocketPathError) throw new UsageError(err.message)
    throw err
  }
  if (!existsSync(socketPath)) {
    throw new ApiError(
      0,
      'UNAVAILABLE',
      `no Workload API socket at ${socketPath}; is the agent running? (set --socket or SPIFFE_ENDPOINT_SOCKET)`,
    )
  }
  const client = new WorkloadApiClient(socketPath)
  try {
    await run(client)
  } catch (err) {
    const code = grpcStatusName(err)
    if (code) throw new ApiError(0, code, (err as { details?: string }).details || (err as Error).message)
    throw err
  } finally {
    client.close()
  }
}

/** The first certificate of a concatenated DER chain. */
function firstCertificate(chain: Buffer): Buffer {
  // A DER SEQUENCE with a long-form length: 0x30 0x8N then N length octets.
  if (chain[0] !== 0x30) throw new Error('the X509-SVID is not DER')
  const first = chain[1]!
  if (first < 0x80) return chain.subarray(0, 2 + first)
  const n = first & 0x7f
  let len = 0
  for (let i = 0; i < n; i++) len = len * 256 + chain[2 + i]!
  return chain.subarray(0, 2 + n + len)
}

function splitCertificates(chain: Buffer): Buffer[] {
  const out: Buffer[] = []
  let rest = chain
  while (rest.length > 0) {
    const cert = firstCertificate(rest)
    out.push(cert)
    rest = rest.subarray(cert.length)
  }
  return out
}

function pemChain(chain: Buffer): string {
  return splitCertificates(chain)
    .map((c) => derToPem(c, 'CERTIFICATE'))
    .join('')
}

function writeX509(dir: string, res: Awaited<ReturnType<WorkloadApiClient['fetchX509Svid']>>): string[] {
  mkdirSync(dir, { recursive: true })
  const files: string[] = []
  const write = (name: string, data: string, mode = 0o644) => {
    const file = path.join(dir, name)
    writeFileSync(file, data, { mode })
    files.push(file)
  }
  const federated = Object.values(res.federated_bundles)
  res.svids.forEach((s, i) => {
    write(`svid.${i}.pem`, pemChain(s.x509_svid))
    // The private key goes to disk only because --write asked for exactly that.
    write(`svid.${i}.key`, derToPem(s.x509_svid_key, 'PRIVATE KEY'), 0o600)
    write(`bundle.${i}.pem`, pemChain(s.bundle))
    federated.forEach((b, j) => {
      write(`federated_bundle.${i}.${j}.pem`, pemChain(b))
    })
  })
  return files
}

function jwtExpiry(token: string): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'))
    return typeof payload.exp === 'number' ? new Date(payload.exp * 1000).toISOString() : undefined
  } catch {
    return undefined
  }
}
