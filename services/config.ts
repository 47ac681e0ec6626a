// Server configuration: validated once, at the edge, against a schema that rejects unknown keys, with
// every default declared here. Core code receives the typed ServerConfig and never reads process.env.

import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import path from 'node:path'
import { Ajv } from 'ajv'
import YAML from 'yaml'

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
  },
} as const

export class ConfigError extends Error {
  override name = 'ConfigError'
}

const unitSeconds: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }

/** Parses `90`, `90s`, `5m`, `1h`, `7d` into seconds. Throws ConfigError naming the input. */
export function parseDuration(input: string | number, what = 'duration'): number {
  if (typeof input === 'number') {
    if (!Number.isInteger(input)) throw new ConfigError(`${what} must be a whole number of seconds`)
    return input
  }
  const match = /^(-?[0-9]+)(ms|s|m|h|d)?$/.exec(input.trim())
  if (!match) {
    throw new ConfigError(
      `${what} ${JSON.stringify(input)} is not a duration; write it like 90s, 5m, 1h or 7d`,
    )
  }
  const seconds = Number(match[1]) * (unitSeconds[match[2] ?? 's'] ?? 1)
  return Math.floor(seconds)
}

export function parseListen(input: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):([0-9]{1,5})$/.exec(input)
  const port = match ? Number(match[2]) : Number.NaN
  if (!match || port > 65535) {
    throw new ConfigError(
      `listen address ${JSON.stringify(input)} must look like HOST:PORT, e.g. 127.0.0.1:8443`,
    )
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port }
}

export interface ConfigSources {
  /** Parsed config file contents, if a file was given. */
  file?: unknown
  /** Command-line overrides. */
  flags?: { dataDir?: string; listen?: string; store?: string; logLevel?: string }
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
    intermediateTtl?: string | number
    jwtKeyTtl?: string | number
    rateLimit?: { max?: number; windowSeconds?: number }
    bodyLimit?: number
    maxBatch?: number
    signingWorkers?: number
    logLevel?: ServerConfig['logLevel']
    trustDomainDefaults?: Record<string, string | number | undefined>
    flows?: { retention?: string | number; maxPerTrustDomain?: number }
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
  }
  const kek = env.SIGIL_KEK
  if (kek) config.kek = kek
  if (config.intermediateTtl < 120) throw new ConfigError('intermediateTtl must be at least 2m')
  if (config.flows.retention < 60) throw new ConfigError('flows.retention must be at least 1m')
  return config
}
