import type { Command } from 'commander'
import { client, duration, enc, output, table, UsageError } from '../context.ts'

interface FlowView {
  id: string
  side: string
  start: string
  source: { spiffeId?: string; path?: string; agent?: string }
  destination: { spiffeId?: string; fqdn?: string; service?: string; port: number }
  verdict: string
  rule?: string
  reason: string
}

const VERDICTS = ['allowed', 'denied', 'unidentified']

function verdictOption(value: string | undefined): string | undefined {
  if (value !== undefined && !VERDICTS.includes(value)) {
    throw new UsageError(`--verdict ${JSON.stringify(value)} must be one of ${VERDICTS.join(', ')}`)
  }
  return value
}

function source(f: FlowView): string {
  return f.source.spiffeId ?? `unidentified: ${f.source.path ?? '?'}`
}

function destination(f: FlowView): string {
  return f.destination.spiffeId ?? f.destination.fqdn ?? f.destination.service ?? '?'
}

export function flowCommands(program: Command): void {
  const flows = program.command('flows').description('Flows the agents reported: list them, draw the graph')

  flows
    .command('list')
    .description('List reported flows, newest first')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .option('--since <dur>', 'only flows of the last DUR, e.g. 1h, 7d')
    .option('--verdict <v>', 'only allowed, denied or unidentified flows')
    .option('--spiffe-id <id>', 'only flows from or to this SPIFFE ID')
    .option('--side <side>', 'only what the caller (egress) or the callee (ingress) reported')
    .option('--limit <n>', 'at most this many (1-5000, default 500)')
    .action(
      async (
        opts: {
          trustDomain: string
          since?: string
          verdict?: string
          spiffeId?: string
          side?: string
          limit?: string
        },
        cmd: Command,
      ) => {
        const q = new URLSearchParams()
        if (opts.since) q.set('since', String(duration(opts.since, '--since')))
        const verdict = verdictOption(opts.verdict)
        if (verdict) q.set('verdict', verdict)
        if (opts.spiffeId) q.set('spiffeId', opts.spiffeId)
        if (opts.side) {
          if (opts.side !== 'egress' && opts.side !== 'ingress')
            throw new UsageError('--side must be egress or ingress')
          q.set('side', opts.side)
        }
        if (opts.limit) {
          if (!/^[0-9]{1,4}$/.test(opts.limit))
            throw new UsageError('--limit must be a number from 1 to 5000')
          q.set('limit', opts.limit)
        }
        const res = await client(cmd).request<{ flows: FlowView[] }>(
          'GET',
          `/v1/trust-domains/${enc(opts.trustDomain)}/flows${q.size ? `?${q}` : ''}`,
        )
        output(cmd, res, () =>
          table([
            ['START', 'SIDE', 'SOURCE', 'DESTINATION', 'PORT', 'VERDICT', 'RULE OR REASON'],
            ...res.flows.map((f) => [
              f.start,
              f.side,
              source(f),
              destination(f),
              String(f.destination.port),
              f.verdict,
              f.rule ?? f.reason,
            ]),
          ]),
        )
      },
    )

  flows
    .command('graph')
    .description('The flow graph: Graphviz DOT (default; pipe it to `dot -Tsvg`) or JSON')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .option('--since <dur>', 'how far back to look, e.g. 1h (default), 24h, 7d')
    .option('--format <format>', 'dot (default) or json')
    .option('--verdict <v>', 'only allowed, denied or unidentified flows')
    .option('--spiffe-id <id>', 'only flows from or to this SPIFFE ID')
    .action(
      async (
        opts: { trustDomain: string; since?: string; format?: string; verdict?: string; spiffeId?: string },
        cmd: Command,
      ) => {
        const json = cmd.optsWithGlobals().json === true
        const format = opts.format ?? (json ? 'json' : 'dot')
        if (format !== 'dot' && format !== 'json') throw new UsageError('--format must be dot or json')
        const q = new URLSearchParams({ format })
        if (opts.since) q.set('since', String(duration(opts.since, '--since')))
        const verdict = verdictOption(opts.verdict)
        if (verdict) q.set('verdict', verdict)
        if (opts.spiffeId) q.set('spiffeId', opts.spiffeId)
        const res = await client(cmd).request<unknown>(
          'GET',
          `/v1/trust-domains/${enc(opts.trustDomain)}/flows/graph?${q}`,
        )
        if (format === 'dot') process.stdout.write(String(res))
        else process.stdout.write(`${JSON.stringify(res, null, 2)}\n`)
      },
    )
}
