// Server configuration: validated once, at the edge, against a schema that rejects unknown keys, with
// every default declared here. Core code receives the typed ServerConfig and never reads process.env.

import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import path from 'node:path'
import { Ajv } from 'ajv'
import YAML from 'yaml'
import { ConfigError, parseDuration, parseListen } from './config-values.ts'

export { ConfigError, parseDuration, parseListen }

export interface ServerConfig {
  dataDir: string
  listen: { host: string; port: number }
  /** `sqlite:PATH` or `redis://HOST:PORT/DB`. */
  store: string
  /** Extra names (DNS or IP) for the server's HTTPS certificate. */
  serverNames: string[]
  /** Base64 key-encryption key; when absent, a 0600 file `kek` in the data dir is used (created once). */
  kek?: string
  intermediateTtl: number
  jwtKeyTtl: number
  rateLimit: { max: number; windowSeconds: number }
  bodyLimit: number
  maxBatch: number
  signingWorkers: number
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  trustDomainDefaults: {
    keyType: 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072'
    caTtl: number
    x509DefaultTtl: number
    x509MaxTtl: number
    jwtDefaultTtl: number
    jwtMaxTtl: number
  }
  /** Flow reports kept per trust domain: the newest `maxPerTrustDomain`, none older than `retention`. */
  flows: { retention: number; maxPerTrustDomain: number }
  /** Federation: the spiffe_refresh_hint (seconds) this server's bundle endpoint serves. */
  federation: { refreshHint: number }
  /** The web console: how long a sign-in lasts, and single sign-on through OpenID Connect. */
  console: ConsoleConfig
  /**
   * A listener of the agents' own (the agent API with client certificates); the main listener then
   * requests none. Unset: agents use the main listener. Port 0 picks one.
   */
  agentListen?: { host: string; port: number }
  /** The tunnel broker (services/broker), when enabled: where agents dial in. Port 0 picks one. */
  broker?: { listen: { host: string; port: number } }
}

export interface ConsoleConfig {
  /** Seconds a console session lasts after sign-in. */
  sessionTtl: number
  oidc?: OidcConfig
}

/** Single sign-on: an OpenID Connect provider (authorization code flow with PKCE). */
export interface OidcConfig {
  issuer: string
  clientId: string
  /** From the file or SIGIL_OIDC_CLIENT_SECRET; absent for a public client (PKCE only). */
  clientSecret?: string
  /** Where the provider sends the browser back; default https://<the host the browser used>/auth/callback. */
  redirectUri?: string
  scopes: string[]
  /** The ID token (or userinfo) claim whose values grant roles: a string or an array of strings. */
  rolesClaim: string
  /** Claim values `<prefix><trust domain or *>:<admin|viewer>` grant that role directly. */
  rolePrefix: string
  /** Other claim values, each mapped to grants written `<trust domain or *>:<admin|viewer>`. */
  roleMapping: Record<string, string[]>
  /** The claim that names the user in the console and the audit log (falls back to sub). */
  nameClaim: string
  /** Accept an http:// issuer, and only on a loopback host: for tests with a local provider. */
  allowInsecureLoopbackIssuer: boolean
}

export const defaults = {
  dataDir: '.sigil',
  listen: '127.0.0.1:8443',
  intermediateTtl: 24 * 3600,
  jwtKeyTtl: 24 * 3600,
  rateLimit: { max: 5000, windowSeconds: 10 },
  bodyLimit: 1024 * 1024,
  maxBatch: 500,
  logLevel: 'info',
  trustDomainDefaults: {
    keyType: 'ec-p256',
    caTtl: 365 * 24 * 3600,
    x509DefaultTtl: 3600,
    x509MaxTtl: 12 * 3600,
    jwtDefaultTtl: 300,
    jwtMaxTtl: 3600,
  },
  flows: { retention: 7 * 24 * 3600, maxPerTrustDomain: 200_000 },
  federation: { refreshHint: 300 },
  console: {
    sessionTtl: 8 * 3600,
    oidc: {
      scopes: ['openid', 'profile', 'email'],
      rolesClaim: 'groups',
      rolePrefix: 'sigil:',
      nameClaim: 'email',
    },
  },
} as const

const durationPattern = '^[0-9]+(ms|s|m|h|d)?$'

/** The schema of the config file (YAML or JSON). Durations are strings like `24h` or seconds. */
export const configFileSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    dataDir: { type: 'string', minLength: 1 },
    listen: { type: 'string', minLength: 1 },
    store: { type: 'string', minLength: 1 },
    serverNames: { type: 'array', items: { type: 'string', minLength: 1 } },
    agentListen: { type: 'string', minLength: 1 },
    broker: {
      type: 'object',
      additionalProperties: false,
      properties: { listen: { type: 'string', minLength: 1 } },
    },
    intermediateTtl: { type: ['string', 'integer'], pattern: durationPattern },
    jwtKeyTtl: { type: ['string', 'integer'], pattern: durationPattern },
    rateLimit: {
      type: 'object',
      additionalProperties: false,
      properties: { max: { type: 'integer', minimum: 1 }, windowSeconds: { type: 'integer', minimum: 1 } },
    },
    bodyLimit: { type: 'integer', minimum: 1024 },
    maxBatch: { type: 'integer', minimum: 1, maximum: 10000 },
    signingWorkers: { type: 'integer', minimum: 0, maximum: 64 },
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    trustDomainDefaults: {
      type: 'object',
      additionalProperties: false,
      properties: {
        keyType: { enum: ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072'] },
        caTtl: { type: ['string', 'integer'], pattern: durationPattern },
        x509DefaultTtl: { type: ['string', 'integer'], pattern: durationPattern },
        x509MaxTtl: { type: ['string', 'integer'], pattern: durationPattern },
        jwtDefaultTtl: { type: ['string', 'integer'], pattern: durationPattern },
        jwtMaxTtl: { type: ['string', 'integer'], pattern: durationPattern },
      },
    },
    flows: {
      type: 'object',
      additionalProperties: false,
      properties: {
        retention: { type: ['string', 'integer'], pattern: durationPattern },
        maxPerTrustDomain: { type: 'integer', minimum: 1, maximum: 10_000_000 },
      },
    },
    federation: {
      type: 'object',
      additionalProperties: false,
      properties: { refreshHint: { type: ['string', 'integer'], pattern: durationPattern } },
    },
    console: {
      type: 'object',
      additionalProperties: false,
      properties: {
        sessionTtl: { type: ['string', 'integer'], pattern: durationPattern },
        oidc: {
          type: 'object',
          additionalProperties: false,
          required: ['issuer', 'clientId'],
          properties: {
            issuer: { type: 'string', minLength: 1 },
            clientId: { type: 'string', minLength: 1 },
            clientSecret: { type: 'string', minLength: 1 },
            redirectUri: { type: 'string', minLength: 1 },
            scopes: { type: 'array', items: { type: 'string', minLength: 1 } },
            rolesClaim: { type: 'string', minLength: 1 },
            rolePrefix: { type: 'string' },
            roleMapping: {
              type: 'object',
              additionalProperties: { type: 'array', items: { type: 'string', minLength: 1 } },
            },
            nameClaim: { type: 'string', minLength: 1 },
            allowInsecureLoopbackIssuer: { type: 'boolean' },
          },
        },
      },
    },
  },
} as const

export interface ConfigSources {
  /** Parsed config file contents, if a file was given. */
  file?: unknown
  /** Command-line overrides. */
  flags?: {
    dataDir?: string
    listen?: string
    store?: string
    logLevel?: string
    brokerListen?: string
    agentListen?: string
  }
  /** The process environment (only the edge passes it). */
  env?: Record<string, string | undefined>
  cwd?: string
}

export function readConfigFile(file: string): unknown {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`)
  }
  try {
    return YAML.parse(text)
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`)
  }
}

const ajv = new Ajv({ allErrors: true, strict: false })
const validateFile = ajv.compile(configFileSchema)

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', '[::1]', 'localhost'])
const GRANT_PATTERN = /^(\*|[a-z0-9._-]+):(admin|viewer)$/

function resolveConsole(
  file: { sessionTtl?: string | number; oidc?: Partial<OidcConfig> } | undefined,
  env: Record<string, string | undefined>,
): ConsoleConfig {
  const sessionTtl = parseDuration(file?.sessionTtl ?? defaults.console.sessionTtl, 'console.sessionTtl')
  if (sessionTtl < 60 || sessionTtl > 30 * 86400) {
    throw new ConfigError('console.sessionTtl must be from 1m to 30d')
  }
  const o = file?.oidc
  if (!o) return { sessionTtl }
  let issuer: URL
  try {
    issuer = new URL(o.issuer!)
  } catch {
    throw new ConfigError(`console.oidc.issuer ${JSON.stringify(o.issuer)} is not a URL`)
  }
  const insecure = o.allowInsecureLoopbackIssuer === true
  if (issuer.protocol !== 'https:') {
    if (!(insecure && issuer.protocol === 'http:')) {
      throw new ConfigError(
        `console.oidc.issuer ${JSON.stringify(o.issuer)} must be an https:// URL (http:// only for a loopback test issuer with allowInsecureLoopbackIssuer: true)`,
      )
    }
    if (!LOOPBACK_HOSTS.has(issuer.hostname)) {
      throw new ConfigError(
        `console.oidc.allowInsecureLoopbackIssuer allows http:// only on a loopback host (127.0.0.1, ::1, localhost), not ${JSON.stringify(issuer.hostname)}`,
      )
    }
  }
  const roleMapping = o.roleMapping ?? {}
  for (const [value, grants] of Object.entries(roleMapping)) {
    for (const g of grants) {
      if (!GRANT_PATTERN.test(g)) {
        throw new ConfigError(
          `console.oidc.roleMapping[${JSON.stringify(value)}]: ${JSON.stringify(g)} is not a grant; write <trust domain or *>:<admin|viewer>, e.g. example.org:viewer`,
        )
      }
    }
  }
  if (o.redirectUri !== undefined) {
    let redirect: URL
    try {
      redirect = new URL(o.redirectUri)
    } catch {
      throw new ConfigError(`console.oidc.redirectUri ${JSON.stringify(o.redirectUri)} is not a URL`)
    }
    if (redirect.protocol !== 'https:' || redirect.pathname !== '/auth/callback') {
      throw new ConfigError(
        'console.oidc.redirectUri must be https://<this server>/auth/callback (the console is served over HTTPS only)',
      )
    }
  }
  const d = defaults.console.oidc
  const oidc: OidcConfig = {
    issuer: o.issuer!,
    clientId: o.clientId!,
    scopes: o.scopes ?? [...d.scopes],
    rolesClaim: o.rolesClaim ?? d.rolesClaim,
    rolePrefix: o.rolePrefix ?? d.rolePrefix,
    roleMapping,
    nameClaim: o.nameClaim ?? d.nameClaim,
    allowInsecureLoopbackIssuer: insecure,
  }
  if (!oidc.scopes.includes('openid')) throw new ConfigError('console.oidc.scopes must include openid')
  const secret = env.SIGIL_OIDC_CLIENT_SECRET ?? o.clientSecret
  if (secret) oidc.clientSecret = secret
  if (o.redirectUri !== undefined) oidc.redirectUri = o.redirectUri
  return { sessionTtl, oidc }
}

export function resolveConfig(sources: ConfigSources): ServerConfig {
  const file = (sources.file ?? {}) as Record<string, unknown>
  if (!validateFile(file)) {
    const detail = (validateFile.errors ?? [])
      .map((e) =>
        e.keyword === 'additionalProperties'
          ? `unknown key ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}${e.instancePath ? ` in ${e.instancePath}` : ''}`
          : `${e.instancePath || '/'} ${e.message}`,
      )
      .join('; ')
    throw new ConfigError(`invalid configuration: ${detail}`)
  }
  const env = sources.env ?? {}
  const flags = sources.flags ?? {}
  const cwd = sources.cwd ?? process.cwd()
  const f = file as {
    dataDir?: string
    listen?: string
    store?: string
    serverNames?: string[]
    broker?: { listen?: string }
    agentListen?: string
    intermediateTtl?: string | number
    jwtKeyTtl?: string | number
    rateLimit?: { max?: number; windowSeconds?: number }
    bodyLimit?: number
    maxBatch?: number
    signingWorkers?: number
    logLevel?: ServerConfig['logLevel']
    trustDomainDefaults?: Record<string, string | number | undefined>
    flows?: { retention?: string | number; maxPerTrustDomain?: number }
    federation?: { refreshHint?: string | number }
    console?: { sessionTtl?: string | number; oidc?: Partial<OidcConfig> }
  }
  const dataDir = path.resolve(cwd, flags.dataDir ?? env.SIGIL_DATA_DIR ?? f.dataDir ?? defaults.dataDir)
  const listen = parseListen(flags.listen ?? env.SIGIL_LISTEN ?? f.listen ?? defaults.listen)
  const store = flags.store ?? env.SIGIL_STORE ?? f.store ?? `sqlite:${path.join(dataDir, 'sigil.db')}`
  const logLevel = (flags.logLevel ??
    env.SIGIL_LOG_LEVEL ??
    f.logLevel ??
    defaults.logLevel) as ServerConfig['logLevel']
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError(
      `log level ${JSON.stringify(logLevel)} must be one of fatal, error, warn, info, debug, trace, silent`,
    )
  }
  const tdd = f.trustDomainDefaults ?? {}
  const d = defaults.trustDomainDefaults
  const trustDomainDefaults: ServerConfig['trustDomainDefaults'] = {
    keyType: (tdd.keyType as ServerConfig['trustDomainDefaults']['keyType']) ?? d.keyType,
    caTtl: parseDuration(tdd.caTtl ?? d.caTtl, 'trustDomainDefaults.caTtl'),
    x509DefaultTtl: parseDuration(
      tdd.x509DefaultTtl ?? d.x509DefaultTtl,
      'trustDomainDefaults.x509DefaultTtl',
    ),
    x509MaxTtl: parseDuration(tdd.x509MaxTtl ?? d.x509MaxTtl, 'trustDomainDefaults.x509MaxTtl'),
    jwtDefaultTtl: parseDuration(tdd.jwtDefaultTtl ?? d.jwtDefaultTtl, 'trustDomainDefaults.jwtDefaultTtl'),
    jwtMaxTtl: parseDuration(tdd.jwtMaxTtl ?? d.jwtMaxTtl, 'trustDomainDefaults.jwtMaxTtl'),
  }
  const config: ServerConfig = {
    dataDir,
    listen,
    store,
    serverNames: f.serverNames ?? [],
    intermediateTtl: parseDuration(f.intermediateTtl ?? defaults.intermediateTtl, 'intermediateTtl'),
    jwtKeyTtl: parseDuration(f.jwtKeyTtl ?? defaults.jwtKeyTtl, 'jwtKeyTtl'),
    rateLimit: {
      max: f.rateLimit?.max ?? defaults.rateLimit.max,
      windowSeconds: f.rateLimit?.windowSeconds ?? defaults.rateLimit.windowSeconds,
    },
    bodyLimit: f.bodyLimit ?? defaults.bodyLimit,
    maxBatch: f.maxBatch ?? defaults.maxBatch,
    signingWorkers: f.signingWorkers ?? Math.min(availableParallelism(), 8),
    logLevel,
    trustDomainDefaults,
    flows: {
      retention: parseDuration(f.flows?.retention ?? defaults.flows.retention, 'flows.retention'),
      maxPerTrustDomain: f.flows?.maxPerTrustDomain ?? defaults.flows.maxPerTrustDomain,
    },
    federation: {
      refreshHint: parseDuration(
        f.federation?.refreshHint ?? defaults.federation.refreshHint,
        'federation.refreshHint',
      ),
    },
    console: resolveConsole(f.console, env),
  }
  const agentListen = flags.agentListen ?? env.SIGIL_AGENT_LISTEN ?? f.agentListen
  if (agentListen) config.agentListen = parseListen(agentListen)
  const brokerListen = flags.brokerListen ?? env.SIGIL_BROKER_LISTEN ?? f.broker?.listen
  if (brokerListen) config.broker = { listen: parseListen(brokerListen) }
  const kek = env.SIGIL_KEK
  if (kek) config.kek = kek
  if (config.intermediateTtl < 120) throw new ConfigError('intermediateTtl must be at least 2m')
  if (config.flows.retention < 60) throw new ConfigError('flows.retention must be at least 1m')
  if (config.federation.refreshHint < 1 || config.federation.refreshHint > 86_400) {
    throw new ConfigError('federation.refreshHint must be from 1s to 1d')
  }
  return config
}
