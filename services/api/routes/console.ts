// Serves the web console: the single-page app that `npm run build:console` (part of `npm run setup`)
// builds into services/console/dist. Hashed assets are immutable and precompressed (brotli, gzip) at
// build time; the page itself is never cached. A strict Content-Security-Policy: scripts, styles and
// workers only from this origin, no inline script, no framing.

import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { PAGE_CSP, renderPage } from '../../console/pages.ts'

export const CONSOLE_DIST = path.resolve(import.meta.dirname, '../../console/dist')

export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "worker-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
}

interface StaticFile {
  body: Buffer
  br?: Buffer
  gzip?: Buffer
  mtimeMs: number
}

const ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/

function readIfPresent(file: string): Buffer | undefined {
  try {
    return readFileSync(file)
  } catch {
    return undefined
  }
}

/** Files of the build, read once and kept (a rebuild changes the mtime, and the file is read again). */
function createFileCache(dist: string) {
  const cache = new Map<string, StaticFile>()
  return (relative: string): StaticFile | undefined => {
    const file = path.join(dist, relative)
    let mtimeMs: number
    try {
      const st = statSync(file)
      if (!st.isFile()) return undefined
      mtimeMs = st.mtimeMs
    } catch {
      cache.delete(relative)
      return undefined
    }
    const hit = cache.get(relative)
    if (hit && hit.mtimeMs === mtimeMs) return hit
    const body = readIfPresent(file)
    if (!body) return undefined
    const entry: StaticFile = { body, mtimeMs }
    const br = readIfPresent(`${file}.br`)
    const gzip = readIfPresent(`${file}.gz`)
    if (br) entry.br = br
    if (gzip) entry.gzip = gzip
    cache.set(relative, entry)
    return entry
  }
}

function send(request: FastifyRequest, reply: FastifyReply, file: StaticFile, type: string): FastifyReply {
  const accepted = String(request.headers['accept-encoding'] ?? '')
  reply.type(type).header('vary', 'accept-encoding').header('x-content-type-options', 'nosniff')
  if (file.br && /\bbr\b/.test(accepted)) return reply.header('content-encoding', 'br').send(file.br)
  if (file.gzip && /\bgzip\b/.test(accepted)) return reply.header('content-encoding', 'gzip').send(file.gzip)
  return reply.send(file.body)
}

export default async function consoleRoutes(
  fastify: FastifyInstance,
  opts: { dist?: string },
): Promise<void> {
  const dist = opts.dist ?? CONSOLE_DIST
  const read = createFileCache(dist)
  const open = { config: { auth: { kind: 'none' as const } }, schema: { hide: true } }

  fastify.get('/', open, async (request, reply) => {
    const index = read('index.html')
    reply
      .header('cache-control', 'no-cache')
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'no-referrer')
      .header('cross-origin-opener-policy', 'same-origin')
    if (!index) {
      return reply
        .code(503)
        .type('text/html; charset=utf-8')
        .header('content-security-policy', PAGE_CSP)
        .send(
          renderPage({
            title: 'The console is not built',
            message: `This trust service is running, but its web console has not been built (${dist} is missing). Run \`npm run setup\` (or \`npm run build:console\`) and reload. The API works meanwhile: /v1/openapi.json describes it.`,
            code: 'CONSOLE_NOT_BUILT',
            links: [{ href: '/v1/openapi.json', text: 'API description' }],
          }),
        )
    }
    reply.header('content-security-policy', CONSOLE_CSP)
    return send(request, reply, index, TYPES['.html']!)
  })

  fastify.get<{ Params: { file: string } }>('/assets/:file', open, async (request, reply) => {
    const name = request.params.file
    const file = ASSET_NAME.test(name) ? read(path.join('assets', name)) : undefined
    if (!file) {
      return reply
        .code(404)
        .type('text/plain; charset=utf-8')
        .send('no such console asset; rebuild the console')
    }
    reply.header('cache-control', 'public, max-age=31536000, immutable')
    return send(request, reply, file, TYPES[path.extname(name)] ?? 'application/octet-stream')
  })

  fastify.get('/favicon.svg', open, async (request, reply) => {
    const file = read('favicon.svg')
    if (!file) return reply.code(404).type('text/plain; charset=utf-8').send('no favicon')
    reply.header('cache-control', 'public, max-age=86400')
    return send(request, reply, file, TYPES['.svg']!)
  })
}
