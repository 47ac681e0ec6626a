import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { client, enc, output, table, UsageError } from '../context.ts'

interface FederationView {
  trustDomain: string
  foreignTrustDomain: string
  bundleEndpointUrl: string
  profile: string
  endpointSpiffeId: string | null
  sequence: number
  roots: number
  jwtKeys: number
  refreshHintSeconds: number
  lastRefreshAt: string | null
  lastError: string | null
  lastErrorAt: string | null
  createdAt: string
  outcome?: string
}

const base = (td: string) => `/v1/trust-domains/${enc(td)}/federations`

function readFile(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new UsageError(`${flag}: cannot read ${file}: ${(err as Error).message}`)
  }
}

function describe(f: FederationView): string {
  return [
    `trust domain:      ${f.trustDomain}`,
    `federates with:    ${f.foreignTrustDomain}`,
    `bundle endpoint:   ${f.bundleEndpointUrl} (${f.profile})`,
    ...(f.endpointSpiffeId ? [`endpoint ID:       ${f.endpointSpiffeId}`] : []),
    `bundle:            sequence ${f.sequence}, ${f.roots} root(s), ${f.jwtKeys} JWT key(s)`,
    `refresh hint:      ${f.refreshHintSeconds}s`,
    `last refresh:      ${f.lastRefreshAt ?? 'never'}`,
    ...(f.lastError ? [`last error:        ${f.lastError} (${f.lastErrorAt})`] : []),
  ].join('\n')
}

export function federationCommands(program: Command): void {
  const federation = program
    .command('federation')
    .description('Federate trust domains: trust the bundles of foreign trust domains (Sigil or SPIRE)')

  federation
    .command('create')
    .description('Federate with a foreign trust domain, fetching its bundle from its bundle endpoint')
    .requiredOption('--trust-domain <td>', 'the (local) trust domain')
    .requiredOption('--with <foreign>', 'the foreign trust domain')
    .requiredOption('--bundle-endpoint <url>', 'its bundle endpoint, https://...')
    .option('--profile <profile>', 'https_web (default) or https_spiffe')
    .option('--endpoint-spiffe-id <id>', "https_spiffe: the SPIFFE ID of the endpoint's server")
    .option(
      '--trust-bundle <file>',
      "https_spiffe: the foreign trust domain's current bundle (SPIFFE JSON or PEM)",
    )
    .option(
      '--endpoint-ca-bundle <file>',
      "https_web: extra roots (PEM) for the endpoint's web certificate (a Sigil server's server-ca.pem)",
    )
    .action(
      async (
        opts: {
          trustDomain: string
          with: string
          bundleEndpoint: string
          profile?: string
          endpointSpiffeId?: string
          trustBundle?: string
          endpointCaBundle?: string
        },
        cmd: Command,
      ) => {
        if (opts.profile !== undefined && opts.profile !== 'https_web' && opts.profile !== 'https_spiffe') {
          throw new UsageError(`--profile ${JSON.stringify(opts.profile)} must be https_web or https_spiffe`)
        }
        const body: Record<string, unknown> = {
          foreignTrustDomain: opts.with,
          bundleEndpointUrl: opts.bundleEndpoint,
        }
        if (opts.profile) body.profile = opts.profile
        if (opts.endpointSpiffeId) body.endpointSpiffeId = opts.endpointSpiffeId
        if (opts.trustBundle) body.trustBundle = readFile(opts.trustBundle, '--trust-bundle')
        if (opts.endpointCaBundle) body.caBundlePem = readFile(opts.endpointCaBundle, '--endpoint-ca-bundle')
        const f = await client(cmd).request<FederationView>('POST', base(opts.trustDomain), body)
        output(cmd, f, () => {
          const head = `${f.trustDomain} now federates with ${f.foreignTrustDomain}`
          return f.lastError
            ? `${head}; the first fetch failed: ${f.lastError} (retried at the refresh hint)`
            : `${head} (bundle sequence ${f.sequence}, ${f.roots} root(s))`
        })
      },
    )

  federation
    .command('list')
    .description('List the federations of a trust domain')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .action(async (opts: { trustDomain: string }, cmd: Command) => {
      const res = await client(cmd).request<{ federations: FederationView[] }>('GET', base(opts.trustDomain))
      output(cmd, res, () =>
        table([
          ['FOREIGN TRUST DOMAIN', 'PROFILE', 'SEQUENCE', 'ROOTS', 'LAST REFRESH', 'LAST ERROR'],
          ...res.federations.map((f) => [
            f.foreignTrustDomain,
            f.profile,
            String(f.sequence),
            String(f.roots),
            f.lastRefreshAt ?? 'never',
            f.lastError ?? '',
          ]),
        ]),
      )
    })

  federation
    .command('show')
    .description('Show a federation and how its refreshes went')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .requiredOption('--with <foreign>', 'the foreign trust domain')
    .action(async (opts: { trustDomain: string; with: string }, cmd: Command) => {
      const f = await client(cmd).request<FederationView>(
        'GET',
        `${base(opts.trustDomain)}/${enc(opts.with)}`,
      )
      output(cmd, f, () => describe(f))
    })

  federation
    .command('refresh')
    .description('Fetch the foreign bundle now')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .requiredOption('--with <foreign>', 'the foreign trust domain')
    .action(async (opts: { trustDomain: string; with: string }, cmd: Command) => {
      const f = await client(cmd).request<FederationView>(
        'POST',
        `${base(opts.trustDomain)}/${enc(opts.with)}/refresh`,
      )
      output(
        cmd,
        f,
        () => `bundle of ${f.foreignTrustDomain} ${f.outcome ?? 'refreshed'}: sequence ${f.sequence}`,
      )
    })

  federation
    .command('delete')
    .description('Stop federating with a foreign trust domain')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .requiredOption('--with <foreign>', 'the foreign trust domain')
    .action(async (opts: { trustDomain: string; with: string }, cmd: Command) => {
      await client(cmd).request('DELETE', `${base(opts.trustDomain)}/${enc(opts.with)}`)
      output(cmd, { deleted: opts.with }, () => `${opts.trustDomain} no longer federates with ${opts.with}`)
    })
}
