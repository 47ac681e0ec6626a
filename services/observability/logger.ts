// The structured logger (pino) of the server and the agent. Secrets never reach a log line, even by
// accident: the paths below are redacted wherever they appear.

import pino, { type Logger } from 'pino'

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export function createLogger(level: LogLevel): Logger {
  return pino({
    level,
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        '*.token',
        '*.sealedKey',
        '*.privateKey',
        'token',
      ],
      censor: '[redacted]',
    },
  })
}
