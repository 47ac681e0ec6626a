import type { Command } from 'commander'
import type { ApiClient } from '../client.ts'
import { client, collect, duration, enc, output, table, UsageError } from '../context.ts'

interface EntryView {
  id: string
  trustDomain: string
  spiffeId: string
  parentId: string
  selectors: string[]
  x509Ttl: number
  jwtTtl: number
  dnsNames: string[]
  admin: boolean
  downstream: boolean
  expiresAt: string | null
}

interface EntryOpts {
  trustDomain?: string
  spiffeId?: string
  parent?: string
  selector?: string[]
  x509Ttl?: string
  jwtTtl?: string
  dns?: string[]
  admin?: boolean
  downstream?: boolean
  federatesWith?: string[]
  expiresAt?: string
}

function body(opts: EntryOpts): Record<string, unknown> {
  const b: Record<string, unknown> = {}
  if (opts.spiffeId) b.spiffeId = opts.spiffeId
  if (opts.parent) b.parentId = opts.parent
  if (opts.selector) b.selectors = opts.selector
  if (opts.x509Ttl) b.x509Ttl = duration(opts.x509Ttl, '--x509-ttl')
  if (opts.jwtTtl) b.jwtTtl = duration(opts.jwtTtl, '--jwt-ttl')
  if (opts.dns) b.dnsNames = opts.dns
  if (opts.admin !== undefined) b.admin = opts.admin
  if (opts.downstream !== undefined) b.downstream = opts.downstream
  if (opts.federatesWith) b.federatesWith = opts.federatesWith
  if (opts.expiresAt) b.expiresAt = opts.expiresAt
  return b
}

function describe(e: EntryView): string {
  return [
    `id:          ${e.id}`,
    `spiffe id:   ${e.spiffeId}`,
    `parent id:   ${e.parentId}`,
    ...e.selectors.map((s, i) => `${i === 0 ? 'selectors:   ' : '             '}${s}`),
    `x509 ttl:    ${e.x509Ttl}s`,
    `jwt ttl:     ${e.jwtTtl}s`,
    ...(e.dnsNames.length ? [`dns names:   ${e.dnsNames.join(', ')}`] : []),
    ...(e.admin ? ['admin:       true'] : []),
    ...(e.downstream ? ['downstream:  true'] : []),
    ...(e.expiresAt ? [`expires at:  ${e.expiresAt}`] : []),
  ].join('\n')
}

/** Entry IDs are unique across the installation; without --trust-domain, look in each visible one. */
async function locate(api: ApiClient, id: string, trustDomain?: string): Promise<string> {
  if (trustDomain) return trustDomain
  const { trustDomains } = await api.request<{ trustDomains: Array<{ name: string }> }>(
    'GET',
    '/v1/trust-domains',
  )
  for (const td of trustDomains) {
    const { status } = await api.raw('GET', `/v1/trust-domains/${enc(td.name)}/entries/${enc(id)}`)
    if (status === 200) return td.name
  }
  return trustDomains[0]?.name ?? '_'
}

function addEntryFlags(cmd: Command): Command {
  return cmd
    .option('--spiffe-id <id>', 'the SPIFFE ID the workload gets')
    .option('--parent <id>', "the parent: an agent ID (spiffe://TD/sigil/agent/...) or a node entry's ID")
    .option(
      '--selector <type:key[:value]>',
      'a selector (repeatable), e.g. unix:uid:1000, k8s:ns:prod',
      collect,
    )
    .option('--x509-ttl <dur>', 'X509-SVID lifetime, e.g. 1h')
    .option('--jwt-ttl <dur>', 'JWT-SVID lifetime, e.g. 5m')
    .option('--dns <name>', 'a DNS SAN (repeatable)', collect)
    .option(
      '--federates-with <td>',
      'a trust domain whose bundle the workload also gets (repeatable)',
      collect,
    )
    .option('--expires-at <time>', 'RFC 3339 time after which the entry no longer applies')
}

export function entryCommands(program: Command): void {
  const entry = program.command('entry').description('Manage registration entries')

  addEntryFlags(
    entry
      .command('create')
      .description('Create a registration entry')
      .requiredOption('--trust-domain <td>', 'the trust domain')
      .option('--admin', 'the workload may call admin APIs')
      .option('--downstream', 'the workload is a downstream CA'),
  ).action(async (opts: EntryOpts, cmd: Command) => {
    if (!opts.spiffeId || !opts.parent || !opts.selector?.length) {
      throw new UsageError('entry create needs --spiffe-id, --parent and at least one --selector')
    }
    const e = await client(cmd).request<EntryView>(
      'POST',
      `/v1/trust-domains/${enc(opts.trustDomain!)}/entries`,
      body(opts),
    )
    output(cmd, e, () => describe(e))
  })

  entry
    .command('list')
    .description('List registration entries')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .option('--spiffe-id <id>', 'only entries with this SPIFFE ID')
    .option('--parent <id>', 'only entries with this parent ID')
    .option('--selector <type:key[:value]>', 'only entries with this selector')
    .action(
      async (
        opts: { trustDomain: string; spiffeId?: string; parent?: string; selector?: string },
        cmd: Command,
      ) => {
        const q = new URLSearchParams()
        if (opts.spiffeId) q.set('spiffeId', opts.spiffeId)
        if (opts.parent) q.set('parentId', opts.parent)
        if (opts.selector) q.set('selector', opts.selector)
        const qs = q.size ? `?${q}` : ''
        const res = await client(cmd).request<{ entries: EntryView[] }>(
          'GET',
          `/v1/trust-domains/${enc(opts.trustDomain)}/entries${qs}`,
        )
        output(cmd, res, () =>
          table([
            ['ID', 'SPIFFE ID', 'PARENT ID', 'SELECTORS'],
            ...res.entries.map((e) => [e.id, e.spiffeId, e.parentId, e.selectors.join(',')]),
          ]),
        )
      },
    )

  entry
    .command('show <id>')
    .description('Show a registration entry')
    .option('--trust-domain <td>', 'the trust domain (found by itself when omitted)')
    .action(async (id: string, opts: { trustDomain?: string }, cmd: Command) => {
      const api = client(cmd)
      const td = await locate(api, id, opts.trustDomain)
      const e = await api.request<EntryView>('GET', `/v1/trust-domains/${enc(td)}/entries/${enc(id)}`)
      output(cmd, e, () => describe(e))
    })

  addEntryFlags(
    entry
      .command('update <id>')
      .description('Change a registration entry (only the flags given; --selector replaces all selectors)')
      .option('--trust-domain <td>', 'the trust domain (found by itself when omitted)')
      .option('--admin', 'set the admin flag')
      .option('--no-admin', 'clear the admin flag')
      .option('--downstream', 'set the downstream flag')
      .option('--no-downstream', 'clear the downstream flag'),
  ).action(async (id: string, opts: EntryOpts, cmd: Command) => {
    const api = client(cmd)
    const td = await locate(api, id, opts.trustDomain)
    const e = await api.request<EntryView>(
      'PATCH',
      `/v1/trust-domains/${enc(td)}/entries/${enc(id)}`,
      body(opts),
    )
    output(cmd, e, () => describe(e))
  })

  entry
    .command('delete <id>')
    .description('Delete a registration entry')
    .option('--trust-domain <td>', 'the trust domain (found by itself when omitted)')
    .action(async (id: string, opts: { trustDomain?: string }, cmd: Command) => {
      const api = client(cmd)
      const td = await locate(api, id, opts.trustDomain)
      await api.request('DELETE', `/v1/trust-domains/${enc(td)}/entries/${enc(id)}`)
      output(cmd, { deleted: id }, () => `deleted entry ${id}`)
    })
}
