// The audit log: one record for every mutating API call (who, what, on what, when, with what result),
// written before the response is sent, queryable per trust domain.

import type { AuditRecord, Store } from '../store/store.ts'

export class AuditLog {
  constructor(private readonly store: Store) {}

  record(entry: Omit<AuditRecord, 'seq'>): Promise<number> {
    return this.store.appendAudit(entry)
  }

  list(trustDomain: string, query: { limit?: number; before?: number }): Promise<AuditRecord[]> {
    const q: { limit: number; before?: number } = { limit: Math.min(Math.max(query.limit ?? 100, 1), 1000) }
    if (query.before !== undefined) q.before = query.before
    return this.store.listAudit(trustDomain, q)
  }
}
