import type { Command } from 'commander'
import { parseDuration } from '../config-values.ts'
import { ApiClient, ApiError, resolveClientOptions } from './client.ts'

export class UsageError extends Error {
  override name = 'UsageError'
}

export interface GlobalOptions {
  server: string
  token?: string
  caBundle?: string
  json?: boolean
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions
}

export function client(cmd: Command): ApiClient {
  const g = globals(cmd)
  const opts: { server: string; token?: string; caBundle?: string } = { server: g.server }
  if (g.token) opts.token = g.token
  if (g.caBundle) opts.caBundle = g.caBundle
  try {
    return new ApiClient(resolveClientOptions(opts, process.env, process.cwd()))
  } catch (err) {
    if (err instanceof ApiError && err.code === 'USAGE') throw new UsageError(err.message)
    throw err
  }
}

/** Prints `data` as one JSON document with --json, else the human form. */
export function output(cmd: Command, data: unknown, human: () => string): void {
  if (globals(cmd).json) process.stdout.write(`${JSON.stringify(data, null, 2)}\n`)
  else {
    const text = human()
    if (text) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
  }
}

export function duration(value: string, what: string): number {
  try {
    const seconds = parseDuration(value, what)
    if (seconds <= 0) throw new UsageError(`${what} must be positive, e.g. 1h`)
    return seconds
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

export function table(rows: string[][]): string {
  if (rows.length === 0) return ''
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '))
    .join('\n')
}

export const enc = encodeURIComponent
