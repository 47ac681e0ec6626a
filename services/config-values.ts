// The value syntaxes the configuration and the CLI share (durations, listen addresses), apart from the
// configuration's schema so that a command can parse them without loading the validator.

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
