// The `sigil` command line. Exit codes (the contract): 0 success, 1 refused request, 2 usage error.

import { Command, CommanderError } from 'commander'
import { agentApiCommands } from '../../agents/cli/agent-api.ts'
import { agentRunCommand } from '../../agents/daemon/run-command.ts'
import { ApiError } from './client.ts'
import { agentAdminCommands } from './commands/agents.ts'
import { auditCommands } from './commands/audit.ts'
import { entryCommands } from './commands/entry.ts'
import { federationCommands } from './commands/federation.ts'
import { flowCommands } from './commands/flows.ts'
import { policyCommands } from './commands/policy.ts'
import { serverCommands } from './commands/server.ts'
import { bundleCommands, svidCommands } from './commands/svid.ts'
import { apiTokenCommands, tokenCommands } from './commands/tokens.ts'
import { trustDomainCommands } from './commands/trust-domain.ts'
import { brokerCommands, tunnelCommands } from './commands/tunnel.ts'
import { UsageError } from './context.ts'

const program = new Command('sigil')
  .description('Sigil: workload identity (SPIFFE) and zero-trust networking for Kubernetes and VMs')
  .option(
    '--server <url>',
    'trust service URL (env SIGIL_SERVER)',
    process.env.SIGIL_SERVER ?? 'https://127.0.0.1:8443',
  )
  .option('--token <token>', 'API token (env SIGIL_TOKEN; default: .sigil/admin.token for a local server)')
  .option(
    '--ca-bundle <file>',
    'CA bundle to trust the server (env SIGIL_CA_BUNDLE; default: .sigil/server-ca.pem)',
  )
  .option('--json', 'print one JSON document on stdout')
  .showHelpAfterError()
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) })

serverCommands(program)
trustDomainCommands(program)
entryCommands(program)
tokenCommands(program)
apiTokenCommands(program)
svidCommands(program)
bundleCommands(program)
auditCommands(program)
policyCommands(program)
flowCommands(program)
federationCommands(program)
tunnelCommands(program)
brokerCommands(program)
const agent = program
  .command('agent')
  .description('The node agent: run it, query its Workload API, manage attested agents')
agentAdminCommands(agent)
agentRunCommand(agent)
agentApiCommands(agent)

function fail(code: number, errCode: string, message: string, json: boolean): never {
  if (json) process.stderr.write(`${JSON.stringify({ error: { code: errCode, message } })}\n`)
  else process.stderr.write(`error: ${errCode}: ${message}\n`)
  process.exit(code)
}

const json = process.argv.includes('--json')
for (const cmd of program.commands) cmd.exitOverride()
try {
  await program.parseAsync(process.argv)
} catch (err) {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0)
      process.exit(0)
    process.exit(2)
  }
  if (err instanceof UsageError) fail(2, 'USAGE', err.message, json)
  if (err instanceof ApiError) fail(1, err.code, err.message, json)
  fail(1, 'ERROR', (err as Error).message ?? String(err), json)
}
