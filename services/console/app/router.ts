// Hash routing: #/trust-domains, #/td/<name>/<page>. The server serves one page at /, so deep links
// work without any server-side fallback.

import { useEffect, useState } from 'react'

export type Route =
  | { page: 'trust-domains' }
  | {
      page:
        | 'overview'
        | 'settings'
        | 'agents'
        | 'entries'
        | 'join-tokens'
        | 'bundle'
        | 'policy'
        | 'graph'
        | 'audit'
      td: string
    }
  | { page: 'home' }

const TD_PAGES = new Set([
  'overview',
  'settings',
  'agents',
  'entries',
  'join-tokens',
  'bundle',
  'policy',
  'graph',
  'audit',
])

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent)
  if (parts[0] === 'trust-domains') return { page: 'trust-domains' }
  if (parts[0] === 'td' && parts[1]) {
    const page = parts[2] ?? 'overview'
    if (TD_PAGES.has(page)) return { page: page as 'overview', td: parts[1] }
  }
  return { page: 'home' }
}

export function href(route: Route): string {
  if (route.page === 'home') return '#/'
  if (route.page === 'trust-domains') return '#/trust-domains'
  return `#/td/${encodeURIComponent(route.td)}/${route.page}`
}

export function navigate(route: Route): void {
  window.location.hash = href(route)
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash))
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash))
    window.addEventListener('hashchange', onChange)
    return () => window.removeEventListener('hashchange', onChange)
  }, [])
  return route
}
