import type Database from 'better-sqlite3'

export interface Migration {
  version: number
  name: string
  up: string
}

// Append only: a released migration is never edited, a change is a new version.
export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'initial',
    up: `
      CREATE TABLE trust_domains (
        name TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        settings TEXT NOT NULL,
        bundle_seq INTEGER NOT NULL
      ) STRICT;

      CREATE TABLE root_cas (
        trust_domain TEXT NOT NULL REFERENCES trust_domains (name) ON DELETE CASCADE,
        id TEXT NOT NULL,
        cert_pem TEXT NOT NULL,
        sealed_key TEXT NOT NULL,
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (trust_domain, id)
      ) STRICT;

      CREATE TABLE jwt_keys (
        trust_domain TEXT NOT NULL REFERENCES trust_domains (name) ON DELETE CASCADE,
        kid TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        not_after INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (trust_domain, kid)
      ) STRICT;

      CREATE TABLE entries (
        trust_domain TEXT NOT NULL REFERENCES trust_domains (name) ON DELETE CASCADE,
        id TEXT NOT NULL,
        spiffe_id TEXT NOT NULL,
        parent_id TEXT NOT NULL,
        selectors TEXT NOT NULL,
        selector_key TEXT NOT NULL,
        x509_ttl INTEGER NOT NULL,
        jwt_ttl INTEGER NOT NULL,
        dns_names TEXT NOT NULL,
        admin INTEGER NOT NULL,
        downstream INTEGER NOT NULL,
        federates_with TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        PRIMARY KEY (trust_domain, id)
      ) STRICT;
      -- The entry identity; selector_key is the sorted, deduplicated selector list (canonical.ts).
      CREATE UNIQUE INDEX entries_identity ON entries (trust_domain, spiffe_id, parent_id, selector_key);
      CREATE INDEX entries_parent ON entries (trust_domain, parent_id);

      -- Lookup table for the selector filter; rewritten with the entry in the same transaction.
      CREATE TABLE entry_selectors (
        trust_domain TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        type TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (trust_domain, entry_id, type, value),
        FOREIGN KEY (trust_domain, entry_id) REFERENCES entries (trust_domain, id) ON DELETE CASCADE
      ) STRICT;
      CREATE INDEX entry_selectors_lookup ON entry_selectors (trust_domain, type, value);

      CREATE TABLE join_tokens (
        trust_domain TEXT NOT NULL REFERENCES trust_domains (name) ON DELETE CASCADE,
        token_hash TEXT NOT NULL,
        spiffe_id TEXT,
        expires_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (trust_domain, token_hash)
      ) STRICT;

      CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        grants TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      ) STRICT;

      -- No foreign key: '' is installation-wide, and an action on a domain that does not exist (a failed
      -- create, the delete itself) is still audited. deleteTrustDomain removes a domain's rows explicitly.
      CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        trust_domain TEXT NOT NULL,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        result TEXT NOT NULL,
        status INTEGER NOT NULL,
        code TEXT,
        request_id TEXT NOT NULL
      ) STRICT;
      CREATE INDEX audit_domain ON audit (trust_domain, seq);

      CREATE TABLE issuances (
        trust_domain TEXT NOT NULL REFERENCES trust_domains (name) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        serial TEXT NOT NULL,
        spiffe_id TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (trust_domain, kind, serial)
      ) STRICT;
      CREATE INDEX issuances_issued ON issuances (trust_domain, issued_at);

      CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 2,
    name: 'agents and claims',
    up: `
      CREATE TABLE agents (
        trust_domain TEXT NOT NULL REFERENCES trust_domains (name) ON DELETE CASCADE,
        spiffe_id TEXT NOT NULL,
        attestor TEXT NOT NULL,
        selectors TEXT NOT NULL,
        serial TEXT NOT NULL,
        svid_expires_at INTEGER NOT NULL,
        attested_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL,
        can_reattest INTEGER NOT NULL,
        banned INTEGER NOT NULL,
        PRIMARY KEY (trust_domain, spiffe_id)
      ) STRICT;

      -- Single-use keys; a row whose expires_at <= now is expired and may be claimed again.
      CREATE TABLE claims (
        trust_domain TEXT NOT NULL REFERENCES trust_domains (name) ON DELETE CASCADE,
        key TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (trust_domain, key)
      ) STRICT;
      CREATE INDEX claims_expiry ON claims (trust_domain, expires_at);
    `,
  },
  {
    version: 3,
    name: 'policies and flows',
    up: `
      CREATE TABLE policies (
        trust_domain TEXT NOT NULL REFERENCES trust_domains (name) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        text TEXT NOT NULL,
        mode TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        updated_by TEXT NOT NULL,
        PRIMARY KEY (trust_domain, version)
      ) STRICT;

      -- One row per (flow id, side); record is the FlowRecord as JSON, the other columns are for queries.
      CREATE TABLE flows (
        trust_domain TEXT NOT NULL REFERENCES trust_domains (name) ON DELETE CASCADE,
        id TEXT NOT NULL,
        side TEXT NOT NULL,
        start INTEGER NOT NULL,
        verdict TEXT NOT NULL,
        source_spiffe_id TEXT,
        destination_spiffe_id TEXT,
        record TEXT NOT NULL,
        PRIMARY KEY (trust_domain, id, side)
      ) STRICT;
      CREATE INDEX flows_start ON flows (trust_domain, start, id, side);
    `,
  },
  {
    version: 4,
    name: 'federations',
    up: `
      CREATE TABLE federations (
        trust_domain TEXT NOT NULL REFERENCES trust_domains (name) ON DELETE CASCADE,
        foreign_trust_domain TEXT NOT NULL,
        bundle_endpoint_url TEXT NOT NULL,
        profile TEXT NOT NULL,
        endpoint_spiffe_id TEXT,
        ca_bundle_pem TEXT,
        bundle TEXT,
        sequence INTEGER NOT NULL,
        refresh_hint_seconds INTEGER NOT NULL,
        last_refresh_at INTEGER NOT NULL,
        last_error TEXT,
        last_error_at INTEGER,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (trust_domain, foreign_trust_domain)
      ) STRICT;
    `,
  },
  {
    version: 5,
    name: 'tunnels',
    up: `
      CREATE TABLE tunnels (
        trust_domain TEXT NOT NULL REFERENCES trust_domains (name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (trust_domain, name)
      ) STRICT;
    `,
  },
]

/**
 * Applies the missing migrations in order. Everything runs in one BEGIN IMMEDIATE transaction, so of two
 * processes migrating at once the second waits (busy_timeout) and then finds nothing left to do.
 */
export function applyMigrations(db: Database.Database, list: readonly Migration[] = migrations): number[] {
  for (let i = 1; i < list.length; i++) {
    if (list[i]!.version <= list[i - 1]!.version)
      throw new Error('sqlite migrations must be strictly ordered')
  }
  const latest = list.at(-1)?.version ?? 0
  const run = db.transaction((): number[] => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      applied_at INTEGER NOT NULL
    ) STRICT`)
    const applied = new Set(db.prepare<[], number>('SELECT version FROM schema_migrations').pluck().all())
    const newest = Math.max(0, ...applied)
    if (newest > latest) {
      throw new Error(`database schema version ${newest} is newer than this build supports (${latest})`)
    }
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
    const done: number[] = []
    for (const m of list) {
      if (applied.has(m.version)) continue
      db.exec(m.up)
      record.run(m.version, m.name, Date.now())
      done.push(m.version)
    }
    return done
  })
  return run.immediate()
}
