import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'

const page = readFileSync(new URL('../../console/index.html', import.meta.url))

export default async function consoleRoutes(fastify: FastifyInstance): Promise<void> {
  fastify.get('/', { config: { auth: { kind: 'none' } }, schema: { hide: true } }, async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header(
        'content-security-policy',
        "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
      )
      .header('x-content-type-options', 'nosniff')
      .send(page),
  )
}
