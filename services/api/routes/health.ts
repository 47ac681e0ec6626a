import type { FastifyInstance } from 'fastify'
import { SigilError } from '../../errors.ts'

export default async function healthRoutes(fastify: FastifyInstance): Promise<void> {
  const { metrics, ready } = fastify.sigil
  const open = { auth: { kind: 'none' as const }, rateLimit: false as const }

  fastify.get(
    '/healthz',
    { config: open, schema: { tags: ['operations'], summary: 'Process alive' } },
    async () => ({
      status: 'ok',
    }),
  )

  fastify.get(
    '/readyz',
    { config: open, schema: { tags: ['operations'], summary: 'Store and CA ready' } },
    async () => {
      if (!(await ready()))
        throw new SigilError('NOT_READY', 'the store or the CA is not ready; see the server log')
      return { status: 'ready' }
    },
  )

  fastify.get(
    '/metrics',
    { config: open, schema: { tags: ['operations'], summary: 'Prometheus metrics' } },
    async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  )

  fastify.get('/v1/openapi.json', { config: open, schema: { hide: true } }, async () => fastify.swagger())
}
