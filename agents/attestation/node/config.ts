// Shape checks for agent attestor configuration (from CLI flags or a file): wrong shapes are TypeErrors
// that say which option is wrong.

export function configObject(
  attestor: string,
  config: unknown,
  allowed: readonly string[],
): Record<string, unknown> {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new TypeError(`${attestor} agent configuration must be an object`)
  }
  for (const key of Object.keys(config)) {
    if (!allowed.includes(key)) {
      throw new TypeError(
        `${attestor} agent configuration has an unknown option ${JSON.stringify(key)} (known: ${allowed.join(', ')})`,
      )
    }
  }
  return config as Record<string, unknown>
}

export function stringOption(
  attestor: string,
  obj: Record<string, unknown>,
  key: string,
  opts: { default?: string; pattern?: RegExp; hint?: string; max?: number } = {},
): string {
  const value = obj[key] ?? opts.default
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`${attestor} agent configuration: ${key} must be a non-empty string`)
  }
  if (value.length > (opts.max ?? 4096) || (opts.pattern && !opts.pattern.test(value))) {
    throw new TypeError(`${attestor} agent configuration: ${key} must be ${opts.hint ?? 'valid'}`)
  }
  return value
}

export function optionalString(
  attestor: string,
  obj: Record<string, unknown>,
  key: string,
  opts: { pattern?: RegExp; hint?: string } = {},
): string | undefined {
  return obj[key] === undefined ? undefined : stringOption(attestor, obj, key, opts)
}

export function timeoutOption(attestor: string, obj: Record<string, unknown>, fallback: number): number {
  const value = obj.timeoutMs ?? fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0 || value > 120_000) {
    throw new TypeError(`${attestor} agent configuration: timeoutMs must be an integer between 1 and 120000`)
  }
  return value
}

export const HTTP_URL = /^https?:\/\/[^\s]+$/
