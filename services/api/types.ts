import type { AgentPrincipal, AgentService } from '../agents/agent-service.ts'
import type { AuditLog } from '../audit/audit-log.ts'
import type { ApiTokenService, Principal } from '../auth/api-tokens.ts'
import type { Authority } from '../authority/authority.ts'
import type { SvidService } from '../authority/svids.ts'
import type { TunnelService } from '../broker/tunnels.ts'
import type { Clock } from '../clock.ts'
import type { ConsoleService } from '../console/console-service.ts'
import type { FederationService } from '../federation/federation-service.ts'
import type { FlowService } from '../flows/flow-service.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { PolicyService } from '../policy/policy-service.ts'
import type { EntryService } from '../registry/entries.ts'
import type { JoinTokenService } from '../registry/join-tokens.ts'
import type { Store } from '../store/store.ts'
import type { TrustDomainService } from '../tenancy/trust-domains.ts'

/** The domain services the routes use. Routes never reach into the store themselves. */
export interface Services {
  clock: Clock
  store: Store
  authority: Authority
  trustDomains: TrustDomainService
  entries: EntryService
  joinTokens: JoinTokenService
  svids: SvidService
  apiTokens: ApiTokenService
  audit: AuditLog
  agents: AgentService
  policies: PolicyService
  flows: FlowService
  federation: FederationService
  tunnels: TunnelService
  metrics: Metrics
  /** Console sign-in (API token or OpenID Connect) and sealed-cookie sessions. */
  console: ConsoleService
  /** Whether the store and the CA answered at start-up and since. */
  ready(): Promise<boolean>
}

export type AuthRequirement =
  | { kind: 'none' }
  /** A role on the trust domain named by the route's `trustDomain` parameter. */
  | { kind: 'trust-domain'; role: 'viewer' | 'admin' }
  /** Any valid token (the route filters what the caller may see). */
  | { kind: 'authenticated' }
  /** An admin grant on '*'. */
  | { kind: 'installation-admin' }
  /** An attested agent, by its X509-SVID as the TLS client certificate. */
  | { kind: 'agent' }

declare module 'fastify' {
  interface FastifyInstance {
    sigil: Services
  }
  interface FastifyRequest {
    principal?: Principal
    agent?: AgentPrincipal
  }
  interface FastifyContextConfig {
    auth?: AuthRequirement
    /** The audited action name, e.g. `entry.create`; mutating routes must have one. */
    action?: string
    /** Audit in the installation log even when the trust domain is visible (its own log is deleted). */
    auditInInstallationLog?: boolean
    /** For routes that create a trust domain: the body field naming it, so a success is audited there. */
    auditTrustDomainField?: string
  }
}
