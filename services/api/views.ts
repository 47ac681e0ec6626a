// API representations of records: what a client may see, and nothing else (no hashes, no sealed keys).

import type { CurrentPolicy } from '../policy/policy-service.ts'
import { toPolicyJson } from '../policy/view.ts'
import { formatSelector } from '../registry/selectors.ts'
import type {
  AgentRecord,
  ApiTokenRecord,
  AuditRecord,
  EntryRecord,
  JoinTokenRecord,
  TrustDomainRecord,
} from '../store/store.ts'

const iso = (ms: number) => new Date(ms).toISOString()

/** `policyMode` is the running policy's mode (the policy is its one source of truth), when given. */
export function trustDomainView(
  td: TrustDomainRecord,
  policyMode?: TrustDomainRecord['settings']['policyMode'],
) {
  const settings = policyMode === undefined ? td.settings : { ...td.settings, policyMode }
  return { name: td.name, createdAt: iso(td.createdAt), settings }
}

export function entryView(e: EntryRecord) {
  return {
    id: e.id,
    trustDomain: e.trustDomain,
    spiffeId: e.spiffeId,
    parentId: e.parentId,
    selectors: e.selectors.map(formatSelector),
    x509Ttl: e.x509Ttl,
    jwtTtl: e.jwtTtl,
    dnsNames: e.dnsNames,
    admin: e.admin,
    downstream: e.downstream,
    federatesWith: e.federatesWith,
    expiresAt: e.expiresAt ? iso(e.expiresAt) : null,
    createdAt: iso(e.createdAt),
    updatedAt: iso(e.updatedAt),
    revision: e.revision,
  }
}

export function joinTokenView(t: JoinTokenRecord) {
  return {
    id: t.tokenHash,
    spiffeId: t.spiffeId ?? null,
    expiresAt: iso(t.expiresAt),
    createdAt: iso(t.createdAt),
  }
}

export function apiTokenView(t: ApiTokenRecord) {
  return {
    id: t.id,
    name: t.name,
    grants: t.grants,
    createdAt: iso(t.createdAt),
    expiresAt: t.expiresAt ? iso(t.expiresAt) : null,
  }
}

export function auditView(a: AuditRecord) {
  return {
    seq: a.seq,
    trustDomain: a.trustDomain,
    at: iso(a.at),
    actor: a.actor,
    action: a.action,
    target: a.target,
    result: a.result,
    status: a.status,
    code: a.code ?? null,
    requestId: a.requestId,
  }
}

export function agentView(a: AgentRecord) {
  return {
    spiffeId: a.spiffeId,
    trustDomain: a.trustDomain,
    attestor: a.attestor,
    selectors: a.selectors.map(formatSelector),
    serial: a.serial,
    svidExpiresAt: iso(a.svidExpiresAt),
    attestedAt: iso(a.attestedAt),
    lastSeenAt: iso(a.lastSeenAt),
    canReattest: a.canReattest,
    banned: a.banned,
  }
}

/** A policy version: its rules spelled out (name, action, from, to; ports as integers or "LOW-HIGH"). */
export function policyView(p: CurrentPolicy) {
  return {
    trustDomain: p.trustDomain,
    version: p.version,
    ...toPolicyJson(p.policy),
    text: p.text,
    updatedAt: p.updatedAt === null ? null : iso(p.updatedAt),
    updatedBy: p.updatedBy,
  }
}
