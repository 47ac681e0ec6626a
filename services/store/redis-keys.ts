// The Redis key scheme. The Lua prelude in redis-scripts.ts builds the same names; change both together.
//
//   <p>schema                  string  schema version
//   <p>tds                     set     trust domain names
//   <p>auditseq                string  last audit seq (INCR)
//   <p>apitok                  hash    API token id -> JSON
//   <p>apitokhash              hash    token hash -> API token id
//   <p>meta                    hash    installation metadata
//   <p>events                  channel ChangeEvent JSON, published by the script that made the change
//   <p>{td}:td                 hash    createdAt, settings (JSON), seq (bundle sequence)
//   <p>{td}:roots              hash    root CA id -> JSON
//   <p>{td}:jwt                hash    kid -> JSON
//   <p>{td}:jwtexp             zset    kid by notAfter
//   <p>{td}:jt                 hash    join token hash -> JSON
//   <p>{td}:entries            set     entry ids
//   <p>{td}:e:<id>             hash    entry fields, each a JSON text (redis-entry.ts)
//   <p>{td}:uniq               hash    sha1 of the entry identity -> entry id
//   <p>{td}:ix:{i,p,s}:<sha1>  set     entry ids by spiffeId / parentId / selector
//   <p>{td}:audit              zset    audit JSON by seq
//   <p>{td}:iss, {td}:issrec   zset, hash  issuance "kind:serial" by issuedAt, and its JSON
//   <p>{td}:agents             set     agent SPIFFE IDs
//   <p>{td}:ag:<spiffe id>     hash    agent fields, each a JSON text (redis-agent.ts)
//   <p>{td}:claims             zset    claimed keys by expiresAt
//   <p>{td}:pol                zset    policy version JSON by version (the newest 100)
//   <p>{td}:flows, {td}:flowrec zset, hash  flow "id\nside" by start, and its FlowRecord JSON
//   <p>{td}:fed                hash    foreign trust domain -> FederationRecord JSON
//   <p>{td}:tun                hash    tunnel name -> TunnelRecord JSON
//
// The braces delimit the trust domain name (and make every per-domain key share a cluster hash slot),
// so a name may not contain braces; SPIFFE trust domain names cannot anyway.
import { createHash } from 'node:crypto'

export type DomainKey =
  | 'td'
  | 'roots'
  | 'jwt'
  | 'jwtexp'
  | 'jt'
  | 'entries'
  | 'uniq'
  | 'audit'
  | 'iss'
  | 'issrec'
  | 'agents'
  | 'claims'
  | 'pol'
  | 'flows'
  | 'flowrec'
  | 'fed'
  | 'tun'
  | `ag:${string}`
  | `e:${string}`
  | `ix:${'i' | 'p' | 's'}:${string}`

export function sha1(text: string): string {
  return createHash('sha1').update(text, 'utf8').digest('hex')
}

export function checkDomainName(name: string): string {
  if (/[{}]/.test(name)) throw new TypeError(`invalid trust domain name: ${JSON.stringify(name)}`)
  return name
}

export class RedisKeys {
  constructor(readonly prefix: string) {}

  get schema(): string {
    return `${this.prefix}schema`
  }
  get domains(): string {
    return `${this.prefix}tds`
  }
  get auditSeq(): string {
    return `${this.prefix}auditseq`
  }
  get apiTokens(): string {
    return `${this.prefix}apitok`
  }
  get apiTokenHashes(): string {
    return `${this.prefix}apitokhash`
  }
  get meta(): string {
    return `${this.prefix}meta`
  }
  /** A pub/sub channel, not a key. */
  get events(): string {
    return `${this.prefix}events`
  }

  domain(td: string, key: DomainKey): string {
    return `${this.prefix}{${checkDomainName(td)}}:${key}`
  }

  /** The pattern of every key of one trust domain (for checks and tests, never for serving). */
  domainPattern(td: string): string {
    return `${this.prefix}{${checkDomainName(td)}}:*`
  }
}
