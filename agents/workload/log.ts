// The logger the agent's parts take: pino's shape, so the agent passes its pino instance straight in.

export interface Log {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error?(obj: object, msg: string): void
  debug?(obj: object, msg: string): void
}

export const silentLog: Log = { info() {}, warn() {} }
