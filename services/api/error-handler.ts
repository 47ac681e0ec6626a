// Turns every failure into the contract's error shape `{ error: { code, message } }` with a stable
// code. Unexpected errors are logged with their stack and answered with a generic 500: internals and
// secrets never reach a client.

import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { type ErrorCode, quote, SigilError } from '../errors.ts'

interface AjvError {
  keyword: string
  instancePath: string
  message?: string
  params: Record<string, unknown>
}

function fromValidation(
  err: FastifyError & { validation: AjvError[]; validationContext?: string },
): SigilError {
  const first = err.validation[0]
  const where = err.validationContext ?? 'body'
  if (first?.keyword === 'additionalProperties') {
    const field = String(first.params.additionalProperty)
    const at = first.instancePath ? ` in ${first.instancePath}` : ''
    return new SigilError(
      'UNKNOWN_FIELD',
      `unknown field ${quote(field)}${at} in the request ${where}; remove it (see /v1/openapi.json)`,
    )
  }
  const path = first?.instancePath ? first.instancePath.slice(1).replaceAll('/', '.') : where
  return new SigilError('VALIDATION_FAILED', `${where} field ${path} ${first?.message ?? 'is invalid'}`)
}

const fastifyCodes: Record<string, [ErrorCode, string]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: [
    'BODY_TOO_LARGE',
    'request body is too large; send less data (batches: split them)',
  ],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ['UNSUPPORTED_MEDIA_TYPE', 'send JSON with Content-Type: application/json'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['BAD_REQUEST', 'Content-Length does not match the body'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [
    'INVALID_JSON',
    'the body is empty but Content-Type says JSON; send a JSON object',
  ],
  FST_ERR_CTP_INVALID_JSON_BODY: ['INVALID_JSON', 'the body is not valid JSON'],
}

export function toSigilError(error: unknown): SigilError | undefined {
  if (error instanceof SigilError) return error
  const err = error as FastifyError & { validation?: AjvError[]; validationContext?: string }
  if (Array.isArray(err?.validation)) return fromValidation(err as never)
  const mapped = err?.code ? fastifyCodes[err.code] : undefined
  if (mapped) return new SigilError(mapped[0], mapped[1])
  if (err instanceof SyntaxError || err?.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new SigilError('INVALID_JSON', 'the body is not valid JSON')
  }
  if (err?.statusCode === 429) return new SigilError('RATE_LIMITED', err.message)
  if (typeof err?.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new SigilError('BAD_REQUEST', err.message)
  }
  return undefined
}

export function sendError(reply: FastifyReply, err: SigilError): FastifyReply {
  const error: { code: string; message: string; details?: Record<string, unknown> } = {
    code: err.code,
    message: err.message,
  }
  if (err.details) error.details = err.details
  return reply.code(err.status).type('application/json').send({ error })
}

async function errorHandler(fastify: FastifyInstance): Promise<void> {
  fastify.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const known = toSigilError(error)
    if (known) {
      if (known.status >= 500) request.log.error({ err: error }, known.message)
      else request.log.info({ code: known.code }, 'request refused')
      return sendError(reply, known)
    }
    request.log.error({ err: error }, 'unhandled error')
    return sendError(
      reply,
      new SigilError('INTERNAL', `internal error; see the server log for request ${request.id}`),
    )
  })
  fastify.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      new SigilError(
        'NOT_FOUND',
        `no route ${request.method} ${request.url.split('?')[0]}; see /v1/openapi.json`,
      ),
    ),
  )
}

export default fp(errorHandler, { name: 'sigil-errors' })
