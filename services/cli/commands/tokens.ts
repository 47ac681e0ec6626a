import type { Command } from 'commander'
import { client, collect, duration, enc, output, table, UsageError } from '../context.ts'

interface JoinTokenView {
  id: string
  token?: string
  spiffeId: string | null
  expiresAt: string
}

export function tokenCommands(program: Command): void {
  const token = program.command('token').description('Join tokens: single-use secrets for agent attestation')

  token
    .command('create')
    .description('Create a join token (shown once)')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .option('--ttl <dur>', 'how long the token stays usable', '1h')
    .option('--spiffe-id <id>', 'the agent SPIFFE ID the token grants')
    .action(async (opts: { trustDomain: string; ttl: string; spiffeId?: string }, cmd: Command) => {
      const body: Record<string, unknown> = { ttl: duration(opts.ttl, '--ttl') }
      if (opts.spiffeId) body.spiffeId = opts.spiffeId
      const res = await client(cmd).request<JoinTokenView>(
        'POST',
        `/v1/trust-domains/${enc(opts.trustDomain)}/join-tokens`,
        body,
      )
      output(cmd, res, () =>
        [
          `token:      ${res.token}`,
          `expires at: ${res.expiresAt}`,
          '',
          'Start an agent with it:',
          `  sigil agent run --server ${cmd.optsWithGlobals().server} --trust-domain ${opts.trustDomain} --trust-bundle server-ca.pem --join-token ${res.token}`,
        ].join('\n'),
      )
    })

  token
    .command('list')
    .description('List unused join tokens (their secrets are never shown again)')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .action(async (opts: { trustDomain: string }, cmd: Command) => {
      const res = await client(cmd).request<{ joinTokens: JoinTokenView[] }>(
        'GET',
        `/v1/trust-domains/${enc(opts.trustDomain)}/join-tokens`,
      )
      output(cmd, res, () =>
        table([
          ['ID', 'SPIFFE ID', 'EXPIRES AT'],
          ...res.joinTokens.map((t) => [t.id, t.spiffeId ?? '-', t.expiresAt]),
        ]),
      )
    })

  token
    .command('revoke <id>')
    .description('Revoke an unused join token')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .action(async (id: string, opts: { trustDomain: string }, cmd: Command) => {
      await client(cmd).request('DELETE', `/v1/trust-domains/${enc(opts.trustDomain)}/join-tokens/${enc(id)}`)
      output(cmd, { revoked: id }, () => `revoked join token ${id}`)
    })
}

interface ApiTokenView {
  id: string
  name: string
  token?: string
  grants: Array<{ trustDomain: string; role: string }>
  expiresAt: string | null
}

export function apiTokenCommands(program: Command): void {
  const apiToken = program
    .command('api-token')
    .description('API tokens for admins and viewers, scoped to trust domains')

  apiToken
    .command('create')
    .description('Create an API token (shown once)')
    .requiredOption('--name <name>', 'who or what the token is for')
    .requiredOption('--grant <td:role>', 'a grant, e.g. example.org:viewer or *:admin (repeatable)', collect)
    .option('--ttl <dur>', 'lifetime (default: no expiry)')
    .action(async (opts: { name: string; grant: string[]; ttl?: string }, cmd: Command) => {
      const grants = opts.grant.map((g) => {
        const i = g.lastIndexOf(':')
        const role = g.slice(i + 1)
        if (i <= 0 || (role !== 'admin' && role !== 'viewer')) {
          throw new UsageError(
            `--grant ${JSON.stringify(g)} must be TRUST_DOMAIN:admin or TRUST_DOMAIN:viewer`,
          )
        }
        return { trustDomain: g.slice(0, i), role }
      })
      const body: Record<string, unknown> = { name: opts.name, grants }
      if (opts.ttl) body.ttl = duration(opts.ttl, '--ttl')
      const res = await client(cmd).request<ApiTokenView>('POST', '/v1/api-tokens', body)
      output(cmd, res, () => `token: ${res.token}\nid:    ${res.id}`)
    })

  apiToken
    .command('list')
    .description('List API tokens you administer')
    .action(async (_opts: unknown, cmd: Command) => {
      const res = await client(cmd).request<{ apiTokens: ApiTokenView[] }>('GET', '/v1/api-tokens')
      output(cmd, res, () =>
        table([
          ['ID', 'NAME', 'GRANTS', 'EXPIRES AT'],
          ...res.apiTokens.map((t) => [
            t.id,
            t.name,
            t.grants.map((g) => `${g.trustDomain}:${g.role}`).join(','),
            t.expiresAt ?? 'never',
          ]),
        ]),
      )
    })

  apiToken
    .command('revoke <id>')
    .description('Revoke an API token')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      await client(cmd).request('DELETE', `/v1/api-tokens/${enc(id)}`)
      output(cmd, { revoked: id }, () => `revoked API token ${id}`)
    })
}
