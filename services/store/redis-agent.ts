// Agents live in Redis as hashes whose fields are JSON texts written by this module (as entries do, see
// redis-entry.ts): the scripts compare and set single fields (serial, banned) without decoding JSON.
import type { AgentRecord } from './store.ts'

const FIELDS = [
  'trustDomain',
  'spiffeId',
  'attestor',
  'selectors',
  'serial',
  'svidExpiresAt',
  'attestedAt',
  'lastSeenAt',
  'canReattest',
  'banned',
] as const satisfies readonly (keyof AgentRecord)[]

/** Flat field/value list for HSET. */
export function encodeAgent(agent: AgentRecord): string[] {
  const out: string[] = []
  for (const field of FIELDS) {
    const value =
      field === 'selectors' ? agent.selectors.map((s) => ({ type: s.type, value: s.value })) : agent[field]
    out.push(field, JSON.stringify(value))
  }
  return out
}

export function decodeAgent(hash: Record<string, string>): AgentRecord | undefined {
  if (Object.keys(hash).length === 0) return undefined
  const agent: Record<string, unknown> = {}
  for (const field of FIELDS) {
    const text = hash[field]
    if (text === undefined) throw new Error(`stored agent lacks ${field}`)
    agent[field] = JSON.parse(text)
  }
  return agent as unknown as AgentRecord
}
