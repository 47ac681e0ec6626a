import t from 'tap'
import { evaluate, type Flow } from '../../services/policy/evaluate.ts'
import { parsePolicy } from '../../services/policy/parse.ts'
import { recommend, toYaml } from '../../services/policy/recommend.ts'

const id = (p: string) => `spiffe://example.org/${p}`
const opts = { trustDomain: 'example.org', federatesWith: ['partner.org'] }

function flow(src: string | undefined, dst: { spiffeId?: string; fqdn?: string }, port: number): Flow {
  return { source: src ? { spiffeId: src, selectors: [] } : { selectors: [] }, destination: dst, port }
}

// Small seeded PRNG so a failing case can be replayed from its seed.
function rng(seed: number) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

function generate(seed: number): Flow[] {
  const r = rng(seed)
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!
  const ids = [
    id('web'),
    id('db'),
    id('ns/prod/sa/api'),
    id('ns/prod/sa/worker'),
    id('ns/prod/sa/cron'),
    id('ns/dev/sa/api'),
    id('ns/dev/sa/worker'),
    'spiffe://partner.org/billing',
  ]
  const fqdns = ['a.s3.amazonaws.com', 'API.Example.com.', 'example.com', 'not a name', '*.evil.com']
  const ports = [80, 443, 5432, 5433, 8080, 8081, 65535, 1]
  const flows: Flow[] = []
  const n = 1 + Math.floor(r() * 40)
  for (let i = 0; i < n; i++) {
    const src = r() < 0.1 ? undefined : r() < 0.05 ? 'spiffe://example.org/bad/' : pick(ids)
    const dst = r() < 0.7 ? { spiffeId: pick(ids) } : r() < 0.9 ? { fqdn: pick(fqdns) } : {}
    flows.push(flow(src, dst, pick(ports)))
  }
  return flows
}

function nameable(f: Flow): boolean {
  const src = f.source.spiffeId
  if (!src || src.endsWith('/')) return false
  return (
    f.destination.spiffeId !== undefined ||
    (f.destination.fqdn !== undefined && /^[a-z0-9.]+\.?$/i.test(f.destination.fqdn))
  )
}

function pairs(flows: Flow[]): number {
  const set = new Set(
    flows
      .filter(nameable)
      .map(
        (f) =>
          `${f.source.spiffeId} ${f.destination.spiffeId ?? f.destination.fqdn?.toLowerCase().replace(/\.$/, '')}`,
      ),
  )
  return set.size
}

t.test('a recommended policy in explicit mode admits every observed identified flow', async (t) => {
  let checked = 0
  for (let seed = 1; seed <= 300; seed++) {
    const flows = generate(seed)
    const p = recommend(flows)
    // Round trip through the file format: what the operator saves is what gets enforced.
    const reparsed = parsePolicy(toYaml(p), opts)
    if (reparsed.rules.length > pairs(flows))
      t.fail(`seed ${seed}: ${reparsed.rules.length} rules for ${pairs(flows)} pairs`)
    t.equal(reparsed.mode, 'explicit')
    for (const f of flows) {
      const d = evaluate(reparsed, f)
      if (nameable(f)) {
        if (d.verdict !== 'allowed') t.fail(`seed ${seed}: ${JSON.stringify(f)} ${d.reason}`)
        checked++
      } else if (!f.source.spiffeId && d.verdict === 'allowed') {
        t.fail(`seed ${seed}: unidentified flow allowed`)
      }
    }
  }
  t.ok(checked > 2000, `checked ${checked} flows`)
})

t.test('one rule per pair, ports unioned, sibling sources collapsed into a glob', async (t) => {
  const flows = [
    flow(id('ns/prod/sa/api'), { spiffeId: id('db') }, 5432),
    flow(id('ns/prod/sa/api'), { spiffeId: id('db') }, 5433),
    flow(id('ns/prod/sa/api'), { fqdn: 'Bucket.s3.amazonaws.com.' }, 443),
    flow(id('ns/prod/sa/worker'), { spiffeId: id('db') }, 5433),
    flow(id('ns/prod/sa/worker'), { spiffeId: id('db') }, 5432),
    flow(id('ns/prod/sa/worker'), { fqdn: 'bucket.s3.amazonaws.com' }, 443),
    flow(id('ns/prod/sa/cron'), { spiffeId: id('db') }, 5432),
    flow(id('web'), { spiffeId: id('db') }, 5432),
    flow(id('web'), { spiffeId: id('db') }, 8080),
    flow(undefined, { spiffeId: id('db') }, 5432),
  ]
  const p = recommend(flows)
  t.same(
    p.rules.map((r) => [r.from.spiffeId, r.to.spiffeId ?? r.to.fqdn, r.to.ports]),
    [
      [id('ns/prod/sa/*'), 'bucket.s3.amazonaws.com', [{ from: 443, to: 443 }]],
      [id('ns/prod/sa/*'), id('db'), [{ from: 5432, to: 5433 }]],
      [id('ns/prod/sa/cron'), id('db'), [{ from: 5432, to: 5432 }]],
      [
        id('web'),
        id('db'),
        [
          { from: 5432, to: 5432 },
          { from: 8080, to: 8080 },
        ],
      ],
    ],
  )
  t.ok(p.rules.every((r) => r.action === 'allow'))
  t.equal(new Set(p.rules.map((r) => r.name)).size, p.rules.length, 'rule names are unique')
  t.same(recommend([]), { mode: 'explicit', allowWithin: [], rules: [] })
})
