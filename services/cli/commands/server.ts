import closeWithGrace from 'close-with-grace'
import type { Command } from 'commander'
import type { resolveConfig } from '../../config.ts'
import { createLogger } from '../../observability/logger.ts'
import { UsageError } from '../context.ts'

export function serverCommands(program: Command): void {
  const server = program.command('server').description('The trust service')
  server
    .command('run')
    .description('Run the trust service (HTTPS API, bundle endpoint, console)')
    .option('--config <file>', 'YAML configuration file')
    .option('--data-dir <dir>', 'data directory (default ./.sigil)')
    .option('--listen <host:port>', 'HTTPS listen address (default 127.0.0.1:8443)')
    .option('--store <url>', 'sqlite:PATH (default: DATA_DIR/sigil.db) or redis://HOST:PORT/DB')
    .option('--log-level <level>', 'fatal, error, warn, info (default), debug, trace, silent')
    .option('--broker-listen <host:port>', 'also run the tunnel broker here (port 0 picks one; logged)')
    .option(
      '--agent-listen <host:port>',
      'a listener for agents alone; the main one then asks browsers for no client certificate',
    )
    .action(
      async (opts: {
        config?: string
        dataDir?: string
        listen?: string
        store?: string
        logLevel?: string
        brokerListen?: string
        agentListen?: string
      }) => {
        // The configuration's schema (ajv) and the server load here, not at start-up: other commands
        // (the agent above all) need neither.
        const { ConfigError, readConfigFile, resolveConfig } = await import('../../config.ts')
        let config: ReturnType<typeof resolveConfig>
        try {
          const sources: Parameters<typeof resolveConfig>[0] = { env: process.env, flags: opts }
          if (opts.config) sources.file = readConfigFile(opts.config)
          config = resolveConfig(sources)
        } catch (err) {
          if (err instanceof ConfigError) throw new UsageError(err.message)
          throw err
        }
        const log = createLogger(config.logLevel)
        const { startServer } = await import('../../server.ts')
        const running = await startServer(config, log)
        closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
          if (err) log.error({ err }, 'shutting down after an error')
          else log.info({ signal }, 'shutting down')
          await running.close()
        })
      },
    )
}
