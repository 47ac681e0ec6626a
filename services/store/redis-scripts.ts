// Every write of the Redis store is one of these scripts: a script runs atomically, and its effects reach
// the AOF as one MULTI/EXEC, so a crash never leaves half of one. Scripts check everything before their
// first write, because Redis does not roll back the writes of a script that fails halfway.
// Key names are built here from the prefix (ARGV[1]) exactly as in redis-keys.ts.
// A script that changes what watchers hear about publishes its ChangeEvent last, after its writes: the
// event and the write are one atomic step, and events reach subscribers in the order of the writes.

const PRELUDE = `
local P = ARGV[1]
local function K(td, suffix) return P .. '{' .. td .. '}:' .. suffix end
local function conflict(resource) return redis.error_reply('SIGIL_CONFLICT ' .. resource) end
local function missing(td) return redis.error_reply('SIGIL_MISSING_TD ' .. td) end
local function hasDomain(td) return redis.call('EXISTS', K(td, 'td')) == 1 end
local function publish(td, kind, id)
  redis.call('PUBLISH', P .. 'events', cjson.encode({ trustDomain = td, kind = kind, id = id }))
end
local SEP = string.char(10)
local function identity(spiffe, parent, selCanon)
  return redis.sha1hex(spiffe .. SEP .. parent .. SEP .. selCanon)
end
local function hdelAll(key, fields)
  for i = 1, #fields, 1000 do
    redis.call('HDEL', key, unpack(fields, i, math.min(i + 999, #fields)))
  end
end
local function indexKeys(td, spiffe, parent, selIdx)
  local keys = { K(td, 'ix:i:' .. redis.sha1hex(spiffe)), K(td, 'ix:p:' .. redis.sha1hex(parent)) }
  for h in string.gmatch(selIdx, '%x+') do keys[#keys + 1] = K(td, 'ix:s:' .. h) end
  return keys
end
`

const BODIES = {
  // ARGV: prefix, version
  migrate: `
local want = tonumber(ARGV[2])
local current = tonumber(redis.call('GET', P .. 'schema') or '0')
if current > want then return redis.error_reply('SIGIL_SCHEMA_NEWER ' .. current) end
if current < want then redis.call('SET', P .. 'schema', want) end
return current
`,

  // ARGV: prefix, td, createdAt, settings JSON, root id, root JSON
  createTrustDomain: `
local td = ARGV[2]
if hasDomain(td) then return conflict('trust_domain') end
redis.call('HSET', K(td, 'td'), 'createdAt', ARGV[3], 'settings', ARGV[4], 'seq', 1)
redis.call('HSET', K(td, 'roots'), ARGV[5], ARGV[6])
redis.call('SADD', P .. 'tds', td)
publish(td, 'trust-domain')
return 1
`,

  // ARGV: prefix, td, settings JSON. Returns createdAt, or nil.
  updateTrustDomainSettings: `
local td = ARGV[2]
if not hasDomain(td) then return false end
redis.call('HSET', K(td, 'td'), 'settings', ARGV[3])
publish(td, 'trust-domain')
return redis.call('HGET', K(td, 'td'), 'createdAt')
`,

  // ARGV: prefix, td
  deleteTrustDomain: `
local td = ARGV[2]
if not hasDomain(td) then return 0 end
for _, id in ipairs(redis.call('SMEMBERS', K(td, 'entries'))) do
  local ek = K(td, 'e:' .. id)
  local f = redis.call('HMGET', ek, 'spiffeId', 'parentId', 'selIdx')
  if f[1] and f[2] and f[3] then
    for _, k in ipairs(indexKeys(td, f[1], f[2], f[3])) do redis.call('DEL', k) end
  end
  redis.call('DEL', ek)
end
for _, id in ipairs(redis.call('SMEMBERS', K(td, 'agents'))) do redis.call('DEL', K(td, 'ag:' .. id)) end
for _, s in ipairs({
  'td', 'roots', 'jwt', 'jwtexp', 'jt', 'entries', 'uniq', 'audit', 'iss', 'issrec', 'agents', 'claims',
  'pol', 'flows', 'flowrec', 'fed', 'tun',
}) do
  redis.call('DEL', K(td, s))
end
redis.call('SREM', P .. 'tds', td)
publish(td, 'trust-domain')
return 1
`,

  // ARGV: prefix, td, id, JSON. Returns the new bundle sequence.
  addRootCa: `
local td = ARGV[2]
if not hasDomain(td) then return missing(td) end
if redis.call('HSETNX', K(td, 'roots'), ARGV[3], ARGV[4]) == 0 then return conflict('root_ca') end
local seq = redis.call('HINCRBY', K(td, 'td'), 'seq', 1)
publish(td, 'bundle')
return seq
`,

  // ARGV: prefix, td, kid, JSON, notAfter. Returns the new bundle sequence.
  publishJwtKey: `
local td = ARGV[2]
if not hasDomain(td) then return missing(td) end
if redis.call('HSETNX', K(td, 'jwt'), ARGV[3], ARGV[4]) == 0 then return conflict('jwt_key') end
redis.call('ZADD', K(td, 'jwtexp'), ARGV[5], ARGV[3])
local seq = redis.call('HINCRBY', K(td, 'td'), 'seq', 1)
publish(td, 'bundle')
return seq
`,

  // ARGV: prefix, td, now. Returns the new bundle sequence, or nil when nothing expired.
  pruneJwtKeys: `
local td = ARGV[2]
if not hasDomain(td) then return false end
local kids = redis.call('ZRANGEBYSCORE', K(td, 'jwtexp'), '-inf', ARGV[3])
if #kids == 0 then return false end
for _, kid in ipairs(kids) do
  redis.call('HDEL', K(td, 'jwt'), kid)
  redis.call('ZREM', K(td, 'jwtexp'), kid)
end
local seq = redis.call('HINCRBY', K(td, 'td'), 'seq', 1)
publish(td, 'bundle')
return seq
`,

  // ARGV: prefix, td, id, field, text, field, text, ... (redis-entry.ts encodeEntry)
  createEntry: `
local td, id = ARGV[2], ARGV[3]
if not hasDomain(td) then return missing(td) end
local ek = K(td, 'e:' .. id)
if redis.call('EXISTS', ek) == 1 then return conflict('entry') end
local f = {}
for i = 4, #ARGV, 2 do f[ARGV[i]] = ARGV[i + 1] end
local u = identity(f.spiffeId, f.parentId, f.selCanon)
if redis.call('HEXISTS', K(td, 'uniq'), u) == 1 then return conflict('entry') end
redis.call('HSET', ek, unpack(ARGV, 4))
redis.call('SADD', K(td, 'entries'), id)
redis.call('HSET', K(td, 'uniq'), u, id)
for _, k in ipairs(indexKeys(td, f.spiffeId, f.parentId, f.selIdx)) do redis.call('SADD', k, id) end
publish(td, 'entry', id)
return 1
`,

  // ARGV: prefix, td, id, now, field, text, ... (redis-entry.ts encodePatch). Returns the entry hash, or nil.
  updateEntry: `
local td, id = ARGV[2], ARGV[3]
local ek = K(td, 'e:' .. id)
if redis.call('EXISTS', ek) == 0 then return false end
local old = redis.call('HMGET', ek, 'spiffeId', 'parentId', 'selCanon', 'selIdx')
local n = { spiffeId = old[1], parentId = old[2], selCanon = old[3], selIdx = old[4] }
for i = 5, #ARGV, 2 do
  if n[ARGV[i]] ~= nil then n[ARGV[i]] = ARGV[i + 1] end
end
local ou = identity(old[1], old[2], old[3])
local nu = identity(n.spiffeId, n.parentId, n.selCanon)
if nu ~= ou then
  local owner = redis.call('HGET', K(td, 'uniq'), nu)
  if owner and owner ~= id then return conflict('entry') end
end
for _, k in ipairs(indexKeys(td, old[1], old[2], old[4])) do redis.call('SREM', k, id) end
if nu ~= ou then
  redis.call('HDEL', K(td, 'uniq'), ou)
  redis.call('HSET', K(td, 'uniq'), nu, id)
end
if #ARGV >= 5 then redis.call('HSET', ek, unpack(ARGV, 5)) end
redis.call('HSET', ek, 'updatedAt', ARGV[4])
redis.call('HINCRBY', ek, 'revision', 1)
for _, k in ipairs(indexKeys(td, n.spiffeId, n.parentId, n.selIdx)) do redis.call('SADD', k, id) end
publish(td, 'entry', id)
return redis.call('HGETALL', ek)
`,

  // ARGV: prefix, td, id
  deleteEntry: `
local td, id = ARGV[2], ARGV[3]
local ek = K(td, 'e:' .. id)
if redis.call('EXISTS', ek) == 0 then return 0 end
local f = redis.call('HMGET', ek, 'spiffeId', 'parentId', 'selCanon', 'selIdx')
for _, k in ipairs(indexKeys(td, f[1], f[2], f[4])) do redis.call('SREM', k, id) end
local u = identity(f[1], f[2], f[3])
if redis.call('HGET', K(td, 'uniq'), u) == id then redis.call('HDEL', K(td, 'uniq'), u) end
redis.call('DEL', ek)
redis.call('SREM', K(td, 'entries'), id)
publish(td, 'entry', id)
return 1
`,

  // ARGV: prefix, td, token hash, JSON
  createJoinToken: `
local td = ARGV[2]
if not hasDomain(td) then return missing(td) end
if redis.call('HSETNX', K(td, 'jt'), ARGV[3], ARGV[4]) == 0 then return conflict('join_token') end
return 1
`,

  // ARGV: prefix, td, token hash. Returns the token JSON, or nil; the token is gone either way.
  consumeJoinToken: `
local td = ARGV[2]
local token = redis.call('HGET', K(td, 'jt'), ARGV[3])
if not token then return false end
redis.call('HDEL', K(td, 'jt'), ARGV[3])
return token
`,

  // ARGV: prefix, id, token hash, JSON
  createApiToken: `
if redis.call('HEXISTS', P .. 'apitok', ARGV[2]) == 1 then return conflict('api_token') end
if redis.call('HEXISTS', P .. 'apitokhash', ARGV[3]) == 1 then return conflict('api_token') end
redis.call('HSET', P .. 'apitok', ARGV[2], ARGV[4])
redis.call('HSET', P .. 'apitokhash', ARGV[3], ARGV[2])
return 1
`,

  // ARGV: prefix, token hash. Returns the token JSON, or nil.
  findApiToken: `
local id = redis.call('HGET', P .. 'apitokhash', ARGV[2])
if not id then return false end
return redis.call('HGET', P .. 'apitok', id)
`,

  // ARGV: prefix, id
  deleteApiToken: `
local token = redis.call('HGET', P .. 'apitok', ARGV[2])
if not token then return 0 end
local hash = cjson.decode(token).tokenHash
if redis.call('HGET', P .. 'apitokhash', hash) == ARGV[2] then redis.call('HDEL', P .. 'apitokhash', hash) end
redis.call('HDEL', P .. 'apitok', ARGV[2])
return 1
`,

  // ARGV: prefix, td, record JSON without seq (an object, so it starts with '{'). Returns the seq.
  appendAudit: `
local seq = redis.call('INCR', P .. 'auditseq')
local record = '{"seq":' .. seq .. ',' .. string.sub(ARGV[3], 2)
redis.call('ZADD', K(ARGV[2], 'audit'), seq, record)
return seq
`,

  // ARGV: prefix, prune cutoff, then per record: td, member ("kind:serial"), issuedAt, JSON
  recordIssuances: `
for i = 3, #ARGV, 4 do
  if not hasDomain(ARGV[i]) then return missing(ARGV[i]) end
end
local touched = {}
for i = 3, #ARGV, 4 do
  local td = ARGV[i]
  if redis.call('ZADD', K(td, 'iss'), 'NX', ARGV[i + 2], ARGV[i + 1]) == 1 then
    redis.call('HSET', K(td, 'issrec'), ARGV[i + 1], ARGV[i + 3])
  end
  touched[td] = true
end
local cutoff = '(' .. ARGV[2]
for td in pairs(touched) do
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', K(td, 'iss'), '-inf', cutoff)) do
    redis.call('HDEL', K(td, 'issrec'), m)
  end
  redis.call('ZREMRANGEBYSCORE', K(td, 'iss'), '-inf', cutoff)
end
return 1
`,

  // ARGV: prefix, td, spiffe id, field, text, ... (redis-agent.ts encodeAgent). Returns the outcome.
  attestAgent: `
local td, id = ARGV[2], ARGV[3]
if not hasDomain(td) then return missing(td) end
local ak = K(td, 'ag:' .. id)
local outcome = 'created'
if redis.call('EXISTS', ak) == 1 then
  local f = redis.call('HMGET', ak, 'banned', 'canReattest')
  if f[1] == 'true' then return 'banned' end
  if f[2] ~= 'true' then return 'exists' end
  outcome = 'reattested'
  redis.call('DEL', ak)
end
redis.call('HSET', ak, unpack(ARGV, 4))
redis.call('SADD', K(td, 'agents'), id)
publish(td, 'agent', id)
return outcome
`,

  // ARGV: prefix, td, spiffe id, previous serial, serial, svidExpiresAt, lastSeenAt (JSON texts)
  renewAgentSvid: `
local td, id = ARGV[2], ARGV[3]
local ak = K(td, 'ag:' .. id)
local f = redis.call('HMGET', ak, 'serial', 'banned')
if f[1] ~= ARGV[4] or f[2] ~= 'false' then return 0 end
redis.call('HSET', ak, 'serial', ARGV[5], 'svidExpiresAt', ARGV[6], 'lastSeenAt', ARGV[7])
publish(td, 'agent', id)
return 1
`,

  // ARGV: prefix, td, spiffe id, lastSeenAt (JSON text)
  touchAgent: `
local ak = K(ARGV[2], 'ag:' .. ARGV[3])
if redis.call('EXISTS', ak) == 0 then return 0 end
redis.call('HSET', ak, 'lastSeenAt', ARGV[4])
return 1
`,

  // ARGV: prefix, td, spiffe id
  banAgent: `
local td, id = ARGV[2], ARGV[3]
local ak = K(td, 'ag:' .. id)
if redis.call('EXISTS', ak) == 0 then return 0 end
redis.call('HSET', ak, 'banned', 'true')
publish(td, 'agent', id)
return 1
`,

  // ARGV: prefix, td, spiffe id
  evictAgent: `
local td, id = ARGV[2], ARGV[3]
if redis.call('DEL', K(td, 'ag:' .. id)) == 0 then return 0 end
redis.call('SREM', K(td, 'agents'), id)
publish(td, 'agent', id)
return 1
`,

  // ARGV: prefix, td, key, expiresAt, now. A claim with expiresAt <= now is expired and pruned first,
  // so its key can be claimed again.
  claimOnce: `
local td = ARGV[2]
if not hasDomain(td) then return missing(td) end
redis.call('ZREMRANGEBYSCORE', K(td, 'claims'), '-inf', ARGV[5])
return redis.call('ZADD', K(td, 'claims'), 'NX', ARGV[4], ARGV[3])
`,

  // ARGV: prefix, td, expected version, new version, JSON, history limit. Returns 1 when stored, 0 when
  // the current version is not the expected one.
  putPolicy: `
local td = ARGV[2]
if not hasDomain(td) then return missing(td) end
local key = K(td, 'pol')
local top = redis.call('ZREVRANGE', key, 0, 0, 'WITHSCORES')
local current = 0
if top[2] then current = tonumber(top[2]) end
if current ~= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', key, ARGV[4], ARGV[5])
redis.call('ZREMRANGEBYRANK', key, 0, -(tonumber(ARGV[6]) + 1))
publish(td, 'policy')
return 1
`,

  // ARGV: prefix, td, foreign td, record JSON
  createFederation: `
local td, foreign = ARGV[2], ARGV[3]
if not hasDomain(td) then return missing(td) end
if redis.call('HSETNX', K(td, 'fed'), foreign, ARGV[4]) == 0 then return conflict('federation') end
publish(td, 'bundle', foreign)
return 1
`,

  // ARGV: prefix, td, foreign td, bundle JSON, sequence, refresh hint, refreshedAt. Returns the outcome
  // (canonical.ts federationBundleOutcome says the same).
  putFederationBundle: `
local td, foreign = ARGV[2], ARGV[3]
local text = redis.call('HGET', K(td, 'fed'), foreign)
if not text then return 'not_found' end
local rec = cjson.decode(text)
local seq = tonumber(ARGV[5])
if rec.bundle ~= nil and seq < rec.sequence then return 'older' end
local outcome = 'stored'
if rec.bundle == ARGV[4] then outcome = 'unchanged' end
rec.bundle = ARGV[4]
rec.sequence = seq
rec.refreshHintSeconds = tonumber(ARGV[6])
rec.lastRefreshAt = tonumber(ARGV[7])
rec.lastError = nil
rec.lastErrorAt = nil
redis.call('HSET', K(td, 'fed'), foreign, cjson.encode(rec))
if outcome == 'stored' then publish(td, 'bundle', foreign) end
return outcome
`,

  // ARGV: prefix, td, foreign td, message, at
  recordFederationError: `
local td, foreign = ARGV[2], ARGV[3]
local text = redis.call('HGET', K(td, 'fed'), foreign)
if not text then return 0 end
local rec = cjson.decode(text)
rec.lastError = ARGV[4]
rec.lastErrorAt = tonumber(ARGV[5])
redis.call('HSET', K(td, 'fed'), foreign, cjson.encode(rec))
return 1
`,

  // ARGV: prefix, td, name, record JSON
  createTunnel: `
local td = ARGV[2]
if not hasDomain(td) then return missing(td) end
if redis.call('HSETNX', K(td, 'tun'), ARGV[3], ARGV[4]) == 0 then return conflict('tunnel') end
return 1
`,

  // ARGV: prefix, td, foreign td
  deleteFederation: `
local td, foreign = ARGV[2], ARGV[3]
if redis.call('HDEL', K(td, 'fed'), foreign) == 0 then return 0 end
publish(td, 'bundle', foreign)
return 1
`,

  // ARGV: prefix, td, prune cutoff (start < cutoff goes), max count, then per record: member ("id\nside"),
  // start, JSON. The oldest by (start, member) go first when over the count, as the stores list them.
  appendFlows: `
local td = ARGV[2]
if not hasDomain(td) then return missing(td) end
local z, h = K(td, 'flows'), K(td, 'flowrec')
for i = 5, #ARGV, 3 do
  redis.call('ZADD', z, ARGV[i + 1], ARGV[i])
  redis.call('HSET', h, ARGV[i], ARGV[i + 2])
end
local cutoff = '(' .. ARGV[3]
hdelAll(h, redis.call('ZRANGEBYSCORE', z, '-inf', cutoff))
redis.call('ZREMRANGEBYSCORE', z, '-inf', cutoff)
local excess = redis.call('ZCARD', z) - tonumber(ARGV[4])
if excess > 0 then
  hdelAll(h, redis.call('ZRANGE', z, 0, excess - 1))
  redis.call('ZREMRANGEBYRANK', z, 0, excess - 1)
end
return 1
`,
} as const

export type ScriptName = keyof typeof BODIES

export const SCRIPTS: Record<ScriptName, string> = Object.fromEntries(
  Object.entries(BODIES).map(([name, body]) => [name, PRELUDE + body]),
) as Record<ScriptName, string>
