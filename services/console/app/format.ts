// How the console writes times, durations and sizes.

export function formatTime(iso: string | number | null | undefined): string {
  if (iso === null || iso === undefined || iso === '') return '—'
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return '—'
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' })
}

/** "in 3 h", "5 min ago". */
export function relative(iso: string | number | null | undefined, now = Date.now()): string {
  if (iso === null || iso === undefined || iso === '') return '—'
  const ms = new Date(iso).getTime() - now
  const abs = Math.abs(ms)
  const [n, unit] =
    abs < 60_000
      ? [Math.round(abs / 1000), 's']
      : abs < 3600_000
        ? [Math.round(abs / 60_000), 'min']
        : abs < 86400_000 * 2
          ? [Math.round(abs / 3600_000), 'h']
          : [Math.round(abs / 86400_000), 'd']
  return ms >= 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`
}

export function formatDuration(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400}d`
  if (seconds % 3600 === 0) return `${seconds / 3600}h`
  if (seconds % 60 === 0) return `${seconds / 60}m`
  return `${seconds}s`
}

/** "90", "90s", "5m", "1h", "7d" into seconds; undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*([0-9]{1,9})\s*(s|m|h|d)?\s*$/.exec(text)
  if (!m) return undefined
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd']
  return Number(m[1]) * unit
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}
