import type { Command } from 'commander'
import { client, duration, enc, output, table } from '../context.ts'

interface TrustDomainView {
  name: string
  createdAt: string
  settings: Record<string, unknown>
}

export function trustDomainCommands(program: Command): void {
  const td = program
    .command('trust-domain')
    .description('Create, list, show and delete trust domains (tenants)')

  td.command('create <name>')
    .description('Create a trust domain and its root CA')
    .option('--key-type <type>', 'root CA key type: ec-p256 (default), ec-p384, rsa-2048, rsa-3072')
    .option('--x509-max-ttl <dur>', 'maximum X509-SVID lifetime, e.g. 12h')
    .option('--jwt-max-ttl <dur>', 'maximum JWT-SVID lifetime, e.g. 1h')
    .action(
      async (
        name: string,
        opts: { keyType?: string; x509MaxTtl?: string; jwtMaxTtl?: string },
        cmd: Command,
      ) => {
        const settings: Record<string, unknown> = {}
        if (opts.keyType) settings.keyType = opts.keyType
        if (opts.x509MaxTtl) settings.x509MaxTtl = duration(opts.x509MaxTtl, '--x509-max-ttl')
        if (opts.jwtMaxTtl) settings.jwtMaxTtl = duration(opts.jwtMaxTtl, '--jwt-max-ttl')
        const body = Object.keys(settings).length ? { name, settings } : { name }
        const created = await client(cmd).request<TrustDomainView>('POST', '/v1/trust-domains', body)
        output(cmd, created, () => `created trust domain ${created.name}`)
      },
    )

  td.command('list')
    .description('List the trust domains you may see')
    .action(async (_opts: unknown, cmd: Command) => {
      const res = await client(cmd).request<{ trustDomains: TrustDomainView[] }>('GET', '/v1/trust-domains')
      output(cmd, res, () =>
        table([
          ['NAME', 'KEY TYPE', 'POLICY MODE', 'CREATED'],
          ...res.trustDomains.map((t) => [
            t.name,
            String(t.settings.keyType),
            String(t.settings.policyMode),
            t.createdAt,
          ]),
        ]),
      )
    })

  td.command('show <name>')
    .description('Show a trust domain and its settings')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const res = await client(cmd).request<TrustDomainView>('GET', `/v1/trust-domains/${enc(name)}`)
      output(cmd, res, () =>
        [
          `name:      ${res.name}`,
          `created:   ${res.createdAt}`,
          ...Object.entries(res.settings).map(([k, v]) => `${`${k}:`.padEnd(16)} ${v}`),
        ].join('\n'),
      )
    })

  td.command('delete <name>')
    .description('Delete a trust domain with its CA, entries, join tokens and audit log')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await client(cmd).request('DELETE', `/v1/trust-domains/${enc(name)}`)
      output(cmd, { deleted: name }, () => `deleted trust domain ${name}`)
    })
}
