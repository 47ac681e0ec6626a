// The few pages the server renders itself: sign-in failures (wrong audience, nonce or state, an expired
// sign-in, a user without a role) and "the console is not built". Every value is HTML-escaped; the
// only style is a fixed block allowed by its hash, so the Content-Security-Policy stays strict.

import { createHash } from 'node:crypto'

const STYLE =
  'body{font-family:system-ui,sans-serif;margin:3rem auto;max-width:44rem;padding:0 1rem;color:#1b1f24}' +
  'h1{font-size:1.5rem}code{background:#f2f4f7;padding:.1rem .3rem;border-radius:3px}' +
  'p.code{color:#57606a;font-size:.9rem}a{color:#0b57d0}'
const STYLE_HASH = createHash('sha256').update(STYLE).digest('base64')

export const PAGE_CSP = `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'`

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

export interface PageLink {
  href: string
  text: string
}

export function renderPage(opts: {
  title: string
  message: string
  code?: string
  links: PageLink[]
}): string {
  const links = opts.links
    .map((l) => `<li><a href="${escapeHtml(l.href)}">${escapeHtml(l.text)}</a></li>`)
    .join('')
  return [
    '<!doctype html><html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(opts.title)} · Sigil</title><style>${STYLE}</style></head><body><main>`,
    `<h1>${escapeHtml(opts.title)}</h1><p role="alert">${escapeHtml(opts.message)}</p>`,
    opts.code ? `<p class="code">Error code: <code>${escapeHtml(opts.code)}</code></p>` : '',
    `<ul>${links}</ul></main></body></html>`,
  ].join('')
}
