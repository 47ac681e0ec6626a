// Agents: attestation (through the node attestor registry), the agent's own X509-SVID and its renewal,
// and what an agent may ask for. The CA must refuse an agent any identity that is not parented to it
// (directly, or through a node alias entry its node selectors match), so a compromised node cannot mint
// the whole mesh.

import type { X509Certificate } from 'node:crypto'
import type { NodeAttestationResult, ServerNodeAttestor } from '../attestation/node/node-attestor.ts'
import type { Authority } from '../authority/authority.ts'
import type { KeyManager } from '../authority/key-manager.ts'
import { pemToDer } from '../authority/pem.ts'
import { requireSpiffeId } from '../authority/require-spiffe-id.ts'
import { type Cert, parseCertDer, verifyChain } from '../authority/x509-chain.ts'
import type { Clock } from '../clock.ts'
import { quote, SigilError } from '../errors.ts'
import type { JoinTokenService } from '../registry/join-tokens.ts'
import { formatSelector } from '../registry/selectors.ts'
import type { AgentRecord, EntryRecord, Store, TrustDomainRecord } from '../store/store.ts'

const SESSION_AAD = 'sigil-attestation-session'
const SESSION_TTL_MS = 5 * 60_000

interface SessionState {
  trustDomain: string
  attestor: string
  state: unknown
  challenge: unknown
  expiresAt: number
}

export interface AttestRequest {
  trustDomain: string
  attestor: string
  evidence: unknown
  csrDer: Buffer
}

export type AttestOutcome =
  | { done: false; session: string; challenge: unknown }
  | { done: true; agent: AgentRecord; chainDer: Buffer[] }

/** The authenticated agent behind an mTLS request. */
export interface AgentPrincipal {
  trustDomain: string
  spiffeId: string
  serial: string
  record: AgentRecord
}

export function normalizeSerial(hex: string): string {
  return hex.toLowerCase().replace(/^0+/, '') || '0'
}

export class AgentService {
  constructor(
    private readonly store: Store,
    private readonly authority: Authority,
    private readonly keys: KeyManager,
    private readonly clock: Clock,
    private readonly joinTokens: JoinTokenService,
    private readonly attestors: (name: string) => ServerNodeAttestor | undefined,
  ) {}

  async attest(td: TrustDomainRecord, req: AttestRequest): Promise<AttestOutcome> {
    const attestor = this.#attestor(req.attestor)
    const step = await attestor.attest(req.evidence, this.#context(td, attestor))
    if (!step.done) {
      const session: SessionState = {
        trustDomain: td.name,
        attestor: attestor.name,
        state: step.state,
        challenge: step.challenge,
        expiresAt: this.clock.now() + SESSION_TTL_MS,
      }
      // The session travels with the agent, sealed, so any replica can finish the attestation.
      const sealed = await this.keys.seal(Buffer.from(JSON.stringify(session)), SESSION_AAD)
      return { done: false, session: sealed, challenge: step.challenge }
    }
    return this.#admit(td, attestor.name, step.result, req.csrDer)
  }

  async answer(
    td: TrustDomainRecord,
    sealed: string,
    answer: unknown,
    csrDer: Buffer,
  ): Promise<AttestOutcome> {
    let session: SessionState
    try {
      session = JSON.parse((await this.keys.unseal(sealed, SESSION_AAD)).toString('utf8')) as SessionState
    } catch {
      throw new SigilError('ATTESTATION_FAILED', 'attestation session is invalid; start attestation again')
    }
    if (session.trustDomain !== td.name) {
      throw new SigilError('ATTESTATION_FAILED', 'attestation session belongs to another trust domain')
    }
    if (session.expiresAt <= this.clock.now()) {
      throw new SigilError('ATTESTATION_FAILED', 'attestation session expired; start attestation again')
    }
    const attestor = this.#attestor(session.attestor)
    const step = await attestor.attest(undefined, this.#context(td, attestor), {
      state: session.state,
      answer,
    })
    if (!step.done) throw new SigilError('ATTESTATION_FAILED', 'attestor asked for a second challenge')
    return this.#admit(td, attestor.name, step.result, csrDer)
  }

  /** Renews the agent's own X509-SVID; the presented SVID must be the current one (not a stale copy). */
  async renew(td: TrustDomainRecord, agent: AgentPrincipal, csrDer: Buffer): Promise<{ chainDer: Buffer[] }> {
    const [issued] = await this.authority.issueX509(td, [
      { csrDer, spiffeId: agent.spiffeId, dnsNames: [], ttl: td.settings.x509DefaultTtl },
    ])
    if (!issued!.ok) throw new SigilError(issued!.code as 'CSR_MALFORMED', issued!.message)
    const now = this.clock.now()
    const swapped = await this.store.renewAgentSvid(td.name, agent.spiffeId, agent.serial, {
      serial: normalizeSerial(issued!.serial),
      svidExpiresAt: issued!.notAfter,
      lastSeenAt: now,
    })
    if (!swapped) {
      throw new SigilError(
        'AGENT_SVID_SUPERSEDED',
        'this agent SVID was already renewed; use the newest one or attest again',
      )
    }
    return { chainDer: issued!.chainDer }
  }

  /** Resolves the agent behind a verified client certificate chain, or throws. */
  async authenticate(chain: X509Certificate[]): Promise<AgentPrincipal> {
    const leaf = chain[0]
    if (!leaf) {
      throw new SigilError(
        'UNAUTHENTICATED',
        "agent routes need the agent's X509-SVID as a TLS client certificate (if this server has an " +
          'agent listener, --agent-listen, agents must connect there)',
      )
    }
    const uris = (leaf.subjectAltName ?? '').split(', ').filter((s) => s.startsWith('URI:'))
    if (uris.length !== 1) throw new SigilError('UNAUTHENTICATED', 'client certificate is not an X509-SVID')
    const spiffeId = uris[0]!.slice(4)
    const match = /^spiffe:\/\/([^/]+)\/sigil\/agent\//.exec(spiffeId)
    if (!match) throw new SigilError('FORBIDDEN', `${quote(spiffeId)} is not an agent identity`)
    const trustDomain = match[1]!
    const now = this.clock.now()
    const roots = (await this.store.listRootCas(trustDomain))
      .filter((r) => r.notAfter > now)
      .map((r) => this.#caCert(pemToDer(r.certPem)))
    try {
      const presented = parseCertDer(chain[0]!.raw)
      const intermediates = chain.slice(1).map((c) => this.#caCert(c.raw))
      verifyChain(presented, intermediates, roots, now)
    } catch (err) {
      throw new SigilError('UNAUTHENTICATED', `client certificate refused: ${(err as Error).message}`, {
        cause: err,
      })
    }
    const record = await this.store.getAgent(trustDomain, spiffeId)
    if (!record)
      throw new SigilError(
        'AGENT_NOT_FOUND',
        `agent ${quote(spiffeId)} is not attested (evicted?); attest again`,
      )
    if (record.banned) throw new SigilError('AGENT_BANNED', `agent ${quote(spiffeId)} is banned`)
    const serial = normalizeSerial(leaf.serialNumber)
    if (record.serial !== serial) {
      throw new SigilError(
        'AGENT_SVID_SUPERSEDED',
        'this agent SVID was replaced by a newer one; use the newest or attest again',
      )
    }
    return { trustDomain, spiffeId, serial, record }
  }

  /** Entries this agent may obtain SVIDs for. */
  async authorizedEntries(td: TrustDomainRecord, agent: AgentRecord): Promise<EntryRecord[]> {
    const now = this.clock.now()
    const all = (await this.store.listEntries(td.name)).filter((e) => e.expiresAt === 0 || e.expiresAt > now)
    const nodeSelectors = new Set(agent.selectors.map(formatSelector))
    const server = `spiffe://${td.name}/sigil/server`
    // Node aliases: entries under the server whose selectors are all among the agent's node selectors.
    const aliases = new Set(
      all
        .filter(
          (e) => e.parentId === server && e.selectors.every((s) => nodeSelectors.has(formatSelector(s))),
        )
        .map((e) => e.spiffeId),
    )
    return all.filter((e) => e.parentId === agent.spiffeId || aliases.has(e.parentId))
  }

  async issueForAgent(
    td: TrustDomainRecord,
    agent: AgentPrincipal,
    requests: Array<{ entryId: string; csrDer: Buffer }>,
  ) {
    const allowed = new Map((await this.authorizedEntries(td, agent.record)).map((e) => [e.id, e]))
    const items = []
    const results: Array<
      | { ok: true; entryId: string; spiffeId: string; chainDer: Buffer[]; notAfter: number }
      | { ok: false; entryId: string; code: string; message: string }
    > = []
    const indexes: number[] = []
    for (const [i, r] of requests.entries()) {
      const entry = allowed.get(r.entryId)
      if (!entry) {
        results[i] = {
          ok: false,
          entryId: r.entryId,
          code: 'FORBIDDEN',
          message: `entry ${quote(r.entryId)} is not parented to this agent or its node selectors`,
        }
        continue
      }
      items.push({ csrDer: r.csrDer, spiffeId: entry.spiffeId, dnsNames: entry.dnsNames, ttl: entry.x509Ttl })
      indexes.push(i)
    }
    const issued = items.length ? await this.authority.issueX509(td, items) : []
    issued.forEach((r, k) => {
      const i = indexes[k]!
      const entryId = requests[i]!.entryId
      results[i] = r.ok
        ? { ok: true, entryId, spiffeId: r.spiffeId, chainDer: r.chainDer, notAfter: r.notAfter }
        : { ok: false, entryId, code: r.code, message: r.message }
    })
    await this.store.touchAgent(td.name, agent.spiffeId, this.clock.now())
    return results
  }

  async issueJwtForAgent(
    td: TrustDomainRecord,
    agent: AgentPrincipal,
    req: { entryId: string; audience: string[] },
  ) {
    const entry = (await this.authorizedEntries(td, agent.record)).find((e) => e.id === req.entryId)
    if (!entry) {
      throw new SigilError(
        'FORBIDDEN',
        `entry ${quote(req.entryId)} is not parented to this agent or its node selectors`,
      )
    }
    if (req.audience.length === 0) throw new SigilError('AUDIENCE_INVALID', 'audience must not be empty')
    return this.authority.issueJwt(td, {
      spiffeId: entry.spiffeId,
      audience: req.audience,
      ttl: entry.jwtTtl,
    })
  }

  list(td: TrustDomainRecord): Promise<AgentRecord[]> {
    return this.store.listAgents(td.name)
  }

  async get(td: TrustDomainRecord, spiffeId: string): Promise<AgentRecord> {
    const agent = await this.store.getAgent(td.name, spiffeId)
    if (!agent) {
      throw new SigilError(
        'AGENT_NOT_FOUND',
        `agent ${quote(spiffeId)} does not exist; list them with \`sigil agent list\``,
      )
    }
    return agent
  }

  async ban(td: TrustDomainRecord, spiffeId: string): Promise<void> {
    if (!(await this.store.banAgent(td.name, spiffeId))) await this.get(td, spiffeId)
  }

  async evict(td: TrustDomainRecord, spiffeId: string): Promise<void> {
    if (!(await this.store.evictAgent(td.name, spiffeId))) await this.get(td, spiffeId)
  }

  // Roots and intermediates are shared by every agent of a trust domain: parse each once.
  readonly #caCerts = new Map<string, Cert>()
  #caCert(der: Buffer): Cert {
    const key = der.toString('base64')
    let cert = this.#caCerts.get(key)
    if (!cert) {
      if (this.#caCerts.size >= 256) this.#caCerts.clear()
      cert = parseCertDer(der)
      this.#caCerts.set(key, cert)
    }
    return cert
  }

  #attestor(name: string): ServerNodeAttestor {
    const attestor = this.attestors(name)
    if (!attestor) {
      throw new SigilError(
        'ATTESTOR_UNKNOWN',
        `node attestor ${quote(name)} is unknown (join_token, x509pop, aws_iid, k8s_psat, gcp_iit, azure_msi)`,
      )
    }
    return attestor
  }

  #context(td: TrustDomainRecord, attestor: ServerNodeAttestor) {
    return {
      trustDomain: td.name,
      config: td.settings.nodeAttestors?.[attestor.name],
      clock: this.clock,
      consumeJoinToken: (token: string) => this.joinTokens.consume(td, token),
      claimOnce: (key: string, expiresAt: number) =>
        this.store.claimOnce(td.name, key, expiresAt, this.clock.now()),
      fetch,
    }
  }

  async #admit(
    td: TrustDomainRecord,
    attestor: string,
    result: NodeAttestationResult,
    csrDer: Buffer,
  ): Promise<AttestOutcome> {
    requireSpiffeId(result.agentId, td.name, 'agentId', { workload: true })
    const [issued] = await this.authority.issueX509(td, [
      { csrDer, spiffeId: result.agentId, dnsNames: [], ttl: td.settings.x509DefaultTtl },
    ])
    if (!issued!.ok) throw new SigilError(issued!.code as 'CSR_MALFORMED', issued!.message)
    const now = this.clock.now()
    const agent: AgentRecord = {
      trustDomain: td.name,
      spiffeId: result.agentId,
      attestor,
      selectors: result.selectors,
      serial: normalizeSerial(issued!.serial),
      svidExpiresAt: issued!.notAfter,
      attestedAt: now,
      lastSeenAt: now,
      canReattest: result.canReattest,
      banned: false,
    }
    const outcome = await this.store.attestAgent(agent)
    if (outcome === 'banned') {
      throw new SigilError(
        'AGENT_BANNED',
        `agent ${quote(agent.spiffeId)} is banned; an admin must evict it before it can attest`,
      )
    }
    if (outcome === 'exists') {
      throw new SigilError(
        'AGENT_EXISTS',
        `agent ${quote(agent.spiffeId)} already attested and its attestor does not allow attesting again; evict it first (\`sigil agent evict\`)`,
      )
    }
    return { done: true, agent, chainDer: issued!.chainDer }
  }
}
