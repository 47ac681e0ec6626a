import type { Command } from 'commander'
import { client, enc, output, table } from '../context.ts'

interface AgentView {
  spiffeId: string
  attestor: string
  selectors: string[]
  svidExpiresAt: string
  lastSeenAt: string
  banned: boolean
}

function describe(a: AgentView): string {
  return [
    `spiffe id:    ${a.spiffeId}`,
    `attestor:     ${a.attestor}`,
    ...a.selectors.map((s, i) => `${i === 0 ? 'selectors:    ' : '              '}${s}`),
    `svid expires: ${a.svidExpiresAt}`,
    `last seen:    ${a.lastSeenAt}`,
    `banned:       ${a.banned}`,
  ].join('\n')
}

/** `sigil agent list|show|ban|evict` (admin side), added to the `agent` command. */
export function agentAdminCommands(agent: Command): void {
  agent
    .command('list')
    .description('List attested agents')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .action(async (opts: { trustDomain: string }, cmd: Command) => {
      const res = await client(cmd).request<{ agents: AgentView[] }>(
        'GET',
        `/v1/trust-domains/${enc(opts.trustDomain)}/agents`,
      )
      output(cmd, res, () =>
        table([
          ['SPIFFE ID', 'ATTESTOR', 'LAST SEEN', 'SVID EXPIRES', 'BANNED'],
          ...res.agents.map((a) => [a.spiffeId, a.attestor, a.lastSeenAt, a.svidExpiresAt, String(a.banned)]),
        ]),
      )
    })

  const byId = (
    name: string,
    description: string,
    run: (td: string, id: string, cmd: Command) => Promise<void>,
  ) =>
    agent
      .command(`${name} <id>`)
      .description(description)
      .option('--trust-domain <td>', "the trust domain (default: the one in the agent's SPIFFE ID)")
      .action(async (id: string, opts: { trustDomain?: string }, cmd: Command) => {
        const td = opts.trustDomain ?? /^spiffe:\/\/([^/]+)\//.exec(id)?.[1] ?? ''
        await run(td, id, cmd)
      })

  byId('show', 'Show an agent (by SPIFFE ID)', async (td, id, cmd) => {
    const a = await client(cmd).request<AgentView>('GET', `/v1/trust-domains/${enc(td)}/agents/${enc(id)}`)
    output(cmd, a, () => describe(a))
  })
  byId('ban', 'Ban an agent: no renewal, no new attestation until evicted', async (td, id, cmd) => {
    const a = await client(cmd).request<AgentView>(
      'POST',
      `/v1/trust-domains/${enc(td)}/agents/${enc(id)}/ban`,
    )
    output(cmd, a, () => `banned ${a.spiffeId}`)
  })
  byId('evict', 'Evict an agent: delete its record so it may attest again', async (td, id, cmd) => {
    await client(cmd).request('DELETE', `/v1/trust-domains/${enc(td)}/agents/${enc(id)}`)
    output(cmd, { evicted: id }, () => `evicted ${id}`)
  })
}
