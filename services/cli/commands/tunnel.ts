// sigil tunnel ...: tunnels through the broker (declare, list, show, delete); sigil broker run: a broker
// on its own, sharing the store of the trust service (so brokers scale out separately).

import closeWithGrace from 'close-with-grace'
import type { Command } from 'commander'
import type { resolveConfig } from '../../config.ts'
import { createLogger } from '../../observability/logger.ts'
import { client, enc, output, table, UsageError } from '../context.ts'

interface TunnelView {
  trustDomain: string
  name: string
  spiffeId: string
  agent: string
  service: string
  port: number | null
  createdAt: string
}

const base = (td: string) => `/v1/trust-domains/${enc(td)}/tunnels`

export function tunnelCommands(program: Command): void {
  const tunnel = program
    .command('tunnel')
    .description('Tunnels through the broker: reach a service behind an agent from another network')

  tunnel
    .command('create')
    .description('Declare a tunnel to a service offered by an agent')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .requiredOption('--name <name>', 'the tunnel name (agents use it as `tunnel: NAME`)')
    .requiredOption('--spiffe-id <id>', "the service's SPIFFE ID (the far side must prove it)")
    .requiredOption('--agent <id>', 'the SPIFFE ID of the agent that offers the service')
    .option('--service <name>', "the service's name in that agent's proxy configuration (default: --name)")
    .option('--port <port>', "the service's port (lets the broker apply port-specific rules)")
    .action(
      async (
        opts: {
          trustDomain: string
          name: string
          spiffeId: string
          agent: string
          service?: string
          port?: string
        },
        cmd: Command,
      ) => {
        const body: Record<string, unknown> = { name: opts.name, spiffeId: opts.spiffeId, agent: opts.agent }
        if (opts.service) body.service = opts.service
        if (opts.port !== undefined) {
          const port = Number(opts.port)
          if (!Number.isInteger(port) || port < 1 || port > 65535)
            throw new UsageError(`--port ${JSON.stringify(opts.port)} must be a port number (1-65535)`)
          body.port = port
        }
        const t = await client(cmd).request<TunnelView>('POST', base(opts.trustDomain), body)
        output(cmd, t, () => `tunnel ${t.name} created: ${t.spiffeId} behind ${t.agent}`)
      },
    )

  tunnel
    .command('list')
    .description('List the tunnels of a trust domain')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .action(async (opts: { trustDomain: string }, cmd: Command) => {
      const res = await client(cmd).request<{ tunnels: TunnelView[] }>('GET', base(opts.trustDomain))
      output(cmd, res, () =>
        table([
          ['NAME', 'SPIFFE ID', 'AGENT', 'SERVICE', 'PORT'],
          ...res.tunnels.map((t) => [
            t.name,
            t.spiffeId,
            t.agent,
            t.service,
            t.port === null ? '' : String(t.port),
          ]),
        ]),
      )
    })

  tunnel
    .command('show')
    .description('Show one tunnel')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .argument('<name>', 'the tunnel')
    .action(async (name: string, opts: { trustDomain: string }, cmd: Command) => {
      const t = await client(cmd).request<TunnelView>('GET', `${base(opts.trustDomain)}/${enc(name)}`)
      output(cmd, t, () =>
        [
          `tunnel:   ${t.name}`,
          `service:  ${t.spiffeId} (${t.service}${t.port === null ? '' : `, port ${t.port}`})`,
          `agent:    ${t.agent}`,
          `created:  ${t.createdAt}`,
        ].join('\n'),
      )
    })

  tunnel
    .command('delete')
    .description('Delete a tunnel')
    .requiredOption('--trust-domain <td>', 'the trust domain')
    .argument('<name>', 'the tunnel')
    .action(async (name: string, opts: { trustDomain: string }, cmd: Command) => {
      await client(cmd).request('DELETE', `${base(opts.trustDomain)}/${enc(name)}`)
      output(cmd, { deleted: name }, () => `tunnel ${name} deleted`)
    })
}

export function brokerCommands(program: Command): void {
  const broker = program.command('broker').description('The tunnel broker')
  broker
    .command('run')
    .description("Run a tunnel broker on its own, sharing the trust service's store and key-encryption key")
    .requiredOption('--listen <host:port>', 'where agents dial in (port 0 picks one; logged)')
    .option('--config <file>', "the trust service's YAML configuration file")
    .option('--data-dir <dir>', "the trust service's data directory (for its kek; default ./.sigil)")
    .option('--store <url>', 'sqlite:PATH or redis://HOST:PORT/DB (the same store as the trust service)')
    .option('--log-level <level>', 'fatal, error, warn, info (default), debug, trace, silent')
    .action(
      async (opts: {
        listen: string
        config?: string
        dataDir?: string
        store?: string
        logLevel?: string
      }) => {
        const { ConfigError, parseListen, readConfigFile, resolveConfig } = await import('../../config.ts')
        let config: ReturnType<typeof resolveConfig>
        let listen: { host: string; port: number }
        try {
          const { listen: brokerListen, config: file, ...flags } = opts
          const sources: Parameters<typeof resolveConfig>[0] = { env: process.env, flags }
          if (file) sources.file = readConfigFile(file)
          config = resolveConfig(sources)
          listen = parseListen(brokerListen)
        } catch (err) {
          if (err instanceof ConfigError) throw new UsageError(err.message)
          throw err
        }
        const log = createLogger(config.logLevel)
        const { runStandaloneBroker } = await import('../../broker/standalone.ts')
        const running = await runStandaloneBroker(config, listen, log)
        closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
          if (err) log.error({ err }, 'shutting down after an error')
          else log.info({ signal }, 'shutting down')
          await running.close()
        })
      },
    )
}
