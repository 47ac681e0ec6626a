import { createContext, useContext } from 'react'
import type { Grant, Session } from './api.ts'

export const SessionContext = createContext<Session | undefined>(undefined)

export function useSession(): Session {
  const s = useContext(SessionContext)
  if (!s) throw new Error('no session')
  return s
}

/** The user's role on a trust domain, as the server computes it (a grant on * covers all). */
export function roleOn(grants: Grant[], td: string): 'admin' | 'viewer' | undefined {
  let best: 'admin' | 'viewer' | undefined
  for (const g of grants) {
    if (g.trustDomain !== '*' && g.trustDomain !== td) continue
    if (g.role === 'admin') return 'admin'
    best = 'viewer'
  }
  return best
}
