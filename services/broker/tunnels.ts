// Tunnels: named ways to reach one service behind one agent through the broker. A tunnel names the
// service's identity (the far side must prove it inside the relayed stream) and the agent that offers
// it; who may use it is decided by the trust domain's policy, like any other flow.

import { parseSpiffeId, SpiffeIdError } from '../authority/spiffe-id.ts'
import type { Clock } from '../clock.ts'
import { quote, SigilError } from '../errors.ts'
import type { TrustDomainRecord } from '../store/store.ts'
import {
  type Store,
  StoreConflictError,
  StoreMissingTrustDomainError,
  type TunnelRecord,
} from '../store/store.ts'

export interface TunnelInput {
  name: string
  spiffeId: string
  agent: string
  service?: string
  port?: number
}

const NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/

function idIn(td: string, id: string, field: string): void {
  let parsed: { trustDomain: string }
  try {
    parsed = parseSpiffeId(id, { requireWorkloadPath: true })
  } catch (err) {
    if (err instanceof SpiffeIdError) throw new SigilError('TUNNEL_INVALID', `${field}: ${err.message}`)
    throw err
  }
  if (parsed.trustDomain !== td)
    throw new SigilError('TUNNEL_INVALID', `${field} ${quote(id)} is not in trust domain ${td}`)
}

export class TunnelService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async create(td: TrustDomainRecord, input: TunnelInput): Promise<TunnelRecord> {
    if (!NAME.test(input.name))
      throw new SigilError(
        'TUNNEL_INVALID',
        `name ${quote(input.name)}: use lower-case letters, digits, '-' and '.' (a DNS label, at most 63)`,
      )
    idIn(td.name, input.spiffeId, 'spiffeId')
    idIn(td.name, input.agent, 'agent')
    if (!/^spiffe:\/\/[^/]+\/sigil\/agent\//.test(input.agent))
      throw new SigilError(
        'TUNNEL_INVALID',
        `agent ${quote(input.agent)} is not an agent SPIFFE ID (spiffe://${td.name}/sigil/agent/...)`,
      )
    const service = input.service ?? input.name
    if (!NAME.test(service))
      throw new SigilError('TUNNEL_INVALID', `service ${quote(service)} is not a valid name`)
    if (input.port !== undefined && (!Number.isInteger(input.port) || input.port < 1 || input.port > 65535))
      throw new SigilError('TUNNEL_INVALID', `port ${input.port} is out of range (1-65535)`)
    const record: TunnelRecord = {
      trustDomain: td.name,
      name: input.name,
      spiffeId: input.spiffeId,
      agent: input.agent,
      service,
      createdAt: this.clock.now(),
    }
    if (input.port !== undefined) record.port = input.port
    try {
      await this.store.createTunnel(record)
    } catch (err) {
      if (err instanceof StoreConflictError)
        throw new SigilError(
          'TUNNEL_EXISTS',
          `trust domain ${td.name} already has a tunnel ${quote(input.name)}`,
        )
      if (err instanceof StoreMissingTrustDomainError)
        throw new SigilError('TRUST_DOMAIN_NOT_FOUND', `trust domain ${td.name} does not exist`)
      throw err
    }
    return record
  }

  async get(td: TrustDomainRecord, name: string): Promise<TunnelRecord> {
    const t = await this.store.getTunnel(td.name, name)
    if (!t) throw new SigilError('TUNNEL_NOT_FOUND', `trust domain ${td.name} has no tunnel ${quote(name)}`)
    return t
  }

  list(td: TrustDomainRecord): Promise<TunnelRecord[]> {
    return this.store.listTunnels(td.name)
  }

  async delete(td: TrustDomainRecord, name: string): Promise<void> {
    if (!(await this.store.deleteTunnel(td.name, name)))
      throw new SigilError('TUNNEL_NOT_FOUND', `trust domain ${td.name} has no tunnel ${quote(name)}`)
  }
}

export function tunnelView(t: TunnelRecord) {
  return {
    trustDomain: t.trustDomain,
    name: t.name,
    spiffeId: t.spiffeId,
    agent: t.agent,
    service: t.service,
    port: t.port ?? null,
    createdAt: new Date(t.createdAt).toISOString(),
  }
}
