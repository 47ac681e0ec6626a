import type { Command } from 'commander'
import { client, enc, output, table } from '../context.ts'

interface AuditView {
  seq: number
  at: string
  actor: string
  action: string
  target: string
  result: string
  status: number
  code: string | null
}

export function auditCommands(program: Command): void {
  program
    .command('audit')
    .description("Show the audit log of a trust domain (or, without --trust-domain, the installation's)")
    .option('--trust-domain <td>', 'the trust domain')
    .option('--limit <n>', 'how many events', '50')
    .action(async (opts: { trustDomain?: string; limit: string }, cmd: Command) => {
      const base = opts.trustDomain ? `/v1/trust-domains/${enc(opts.trustDomain)}/audit` : '/v1/audit'
      const res = await client(cmd).request<{ events: AuditView[] }>(
        'GET',
        `${base}?limit=${enc(opts.limit)}`,
      )
      output(cmd, res, () =>
        table([
          ['AT', 'ACTOR', 'ACTION', 'TARGET', 'RESULT'],
          ...res.events.map((e) => [
            e.at,
            e.actor,
            e.action,
            e.target,
            `${e.result} ${e.status}${e.code ? ` ${e.code}` : ''}`,
          ]),
        ]),
      )
    })
}
