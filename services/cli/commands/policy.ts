import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { ApiError } from '../client.ts'
import { client, duration, enc, output, table, UsageError } from '../context.ts'

interface PolicyView {
  trustDomain: string
  version: number
  mode: string
  allowWithin: string[]
  rules: Array<{ name: string; action: string }>
  text: string
  updatedAt: string | null
  updatedBy: string | null
}

interface DryRunView {
  wouldDeny: Array<{
    source: { spiffeId?: string; path?: string; agent?: string }
    destination: { spiffeId?: string; fqdn?: string }
    port: number
    reason: string
    count: number
  }>
  wouldAllow: number
  flowsExamined: number
}

const path = (td: string) => `/v1/trust-domains/${enc(td)}/policy`

function readPolicyFile(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`)
  }
}

/** A refused file names itself and the line, as compilers do: `policy.yaml:12: rules[0].to.ports: ...`. */
function withFileName(err: unknown, file: string): unknown {
  if (!(err instanceof ApiError) || err.code !== 'POLICY_INVALID') return err
  const line = err.details?.line
  if (typeof line !== 'number') return err
  const message = `${file}:${line}: ${err.message.replace(/^line \d+, /, '')}`
  return new ApiError(err.status, err.code, message, err.details)
}

function sinceSeconds(value: string | undefined): number | undefined {
  return value === undefined ? undefined : duration(value, '--since')
}

function describeSource(s: DryRunView['wouldDeny'][number]['source']): string {
  return s.spiffeId ?? `unidentified: ${s.path ?? 'unknown process'} on ${s.agent ?? 'an unknown agent'}`
}

export function policyCommands(program: Command): void {
  const policy = program
    .command('policy')
    .description("Manage a trust domain's network policy: show, set, switch mode, dry-run, recommend")

  policy
    .command('show')
    .description('Print the current policy file (--json: the policy with its version)')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .action(async (opts: { trustDomain: string }, cmd: Command) => {
      const p = await client(cmd).request<PolicyView>('GET', path(opts.trustDomain))
      output(cmd, p, () =>
        p.version === 0
          ? `# no policy set yet (version 0): no rules\nmode: ${p.mode}\n`
          : p.text.endsWith('\n')
            ? p.text
            : `${p.text}\n`,
      )
    })

  policy
    .command('set')
    .description('Set the policy from a policy file (a new version)')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .requiredOption('--file <file>', 'the policy file (YAML)')
    .option('--expected-version <n>', 'refuse unless the current version is this one (safe concurrent edits)')
    .action(async (opts: { trustDomain: string; file: string; expectedVersion?: string }, cmd: Command) => {
      const body: Record<string, unknown> = { text: readPolicyFile(opts.file) }
      if (opts.expectedVersion !== undefined) {
        if (!/^[0-9]{1,15}$/.test(opts.expectedVersion)) {
          throw new UsageError('--expected-version must be a version number, e.g. 3')
        }
        body.expectedVersion = Number(opts.expectedVersion)
      }
      let p: PolicyView
      try {
        p = await client(cmd).request<PolicyView>('PUT', path(opts.trustDomain), body)
      } catch (err) {
        throw withFileName(err, opts.file)
      }
      output(cmd, p, () => `policy of ${p.trustDomain} is now version ${p.version} (${p.mode})`)
    })

  policy
    .command('mode <mode>')
    .description('Switch the policy mode: baseline (observe, let unidentified through) or explicit')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .action(async (mode: string, opts: { trustDomain: string }, cmd: Command) => {
      if (mode !== 'baseline' && mode !== 'explicit') {
        throw new UsageError(`mode ${JSON.stringify(mode)} must be baseline or explicit`)
      }
      const p = await client(cmd).request<PolicyView>('PUT', `${path(opts.trustDomain)}/mode`, { mode })
      output(cmd, p, () => `policy of ${p.trustDomain} is in ${p.mode} mode (version ${p.version})`)
    })

  policy
    .command('history')
    .description('List policy versions, newest first')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .option('--limit <n>', 'at most this many (1-100, default 20)')
    .action(async (opts: { trustDomain: string; limit?: string }, cmd: Command) => {
      const qs = opts.limit ? `?limit=${enc(opts.limit)}` : ''
      const res = await client(cmd).request<{ versions: PolicyView[] }>(
        'GET',
        `${path(opts.trustDomain)}/versions${qs}`,
      )
      output(cmd, res, () =>
        table([
          ['VERSION', 'MODE', 'RULES', 'UPDATED AT', 'UPDATED BY'],
          ...res.versions.map((v) => [
            String(v.version),
            v.mode,
            String(v.rules.length),
            v.updatedAt ?? '',
            v.updatedBy ?? '',
          ]),
        ]),
      )
    })

  policy
    .command('dry-run')
    .description(
      'What a policy (--file, or the current one) would refuse in explicit mode, over recent flows',
    )
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .option('--file <file>', 'a policy file to try instead of the current policy')
    .option('--since <dur>', 'how far back to look, e.g. 1h (default), 24h, 7d')
    .action(async (opts: { trustDomain: string; file?: string; since?: string }, cmd: Command) => {
      const body: Record<string, unknown> = {}
      if (opts.file) body.text = readPolicyFile(opts.file)
      const since = sinceSeconds(opts.since)
      if (since !== undefined) body.since = since
      let res: DryRunView
      try {
        res = await client(cmd).request<DryRunView>('POST', `${path(opts.trustDomain)}/dry-run`, body)
      } catch (err) {
        throw opts.file ? withFileName(err, opts.file) : err
      }
      output(cmd, res, () => {
        const denied = res.wouldDeny.reduce((n, g) => n + g.count, 0)
        const head = `${res.flowsExamined} flows examined: ${res.wouldAllow} would be allowed, ${denied} would be denied`
        if (res.wouldDeny.length === 0) return head
        return `${head}\n\n${table([
          ['SOURCE', 'DESTINATION', 'PORT', 'FLOWS', 'REASON'],
          ...res.wouldDeny.map((g) => [
            describeSource(g.source),
            g.destination.spiffeId ?? g.destination.fqdn ?? '',
            String(g.port),
            String(g.count),
            g.reason,
          ]),
        ])}`
      })
    })

  policy
    .command('recommend')
    .description('Recommend a policy that admits the identified flows seen recently')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .option('--since <dur>', 'how far back to look, e.g. 1h (default), 24h, 7d')
    .option('--format <format>', 'yaml (default), json, k8s (NetworkPolicy) or cilium (CiliumNetworkPolicy)')
    .action(async (opts: { trustDomain: string; since?: string; format?: string }, cmd: Command) => {
      if (opts.format && !['yaml', 'json', 'k8s', 'cilium'].includes(opts.format)) {
        throw new UsageError(`--format ${JSON.stringify(opts.format)} must be yaml, json, k8s or cilium`)
      }
      const q = new URLSearchParams()
      const since = sinceSeconds(opts.since)
      if (since !== undefined) q.set('since', String(since))
      if (opts.format) q.set('format', opts.format)
      const res = await client(cmd).request<{ format: string; text: string }>(
        'GET',
        `${path(opts.trustDomain)}/recommendation${q.size ? `?${q}` : ''}`,
      )
      output(cmd, res, () => res.text)
    })
}
