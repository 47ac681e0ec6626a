// Parses a policy file (CONTRACT.md, "Policy file") into a Policy. Pure: no I/O, no store.
// Everything is refused loudly, with the line and the path of the offending field, because a policy
// typo that silently matches nothing would open or close traffic nobody intended.
//
// Decisions beyond the contract:
//   - `mode` defaults to baseline, `allowWithin` and `rules` to [], a rule's `action` to allow.
//   - `ports` holds integers 1-65535 or strings "LOW-HIGH" (inclusive, LOW <= HIGH); no `ports` means
//     every port; an empty list is refused. Only `to` has ports (source ports are ephemeral).
//   - `from` takes spiffeId and/or selector; `to` takes spiffeId, selector, fqdn. Several criteria in
//     one end must all match. An end with no criterion is refused, as is `to.fqdn` with `to.spiffeId`.
//   - SPIFFE IDs outside opts.trustDomain are refused unless their trust domain is in
//     opts.federatesWith: a policy must not reach into another tenant's identities.
//   - Anchors, aliases, tags and multiple documents are refused: a policy is plain data.

import { isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml'
import { parseSpiffeId, SpiffeIdError } from '../authority/spiffe-id.ts'
import { SigilError } from '../errors.ts'
import { parseSelector, selectorKinds } from '../registry/selectors.ts'
import { fqdnProblem, globProblem, globSkeleton, isSpiffeGlob, mergePorts } from './patterns.ts'
import {
  type Action,
  type Destination,
  type Mode,
  type Policy,
  PolicyError,
  type PortRange,
  type Rule,
  type Source,
} from './policy.ts'

export interface ParsePolicyOptions {
  trustDomain: string
  /** Trust domains this one federates with; their SPIFFE IDs may appear in rules. */
  federatesWith?: Iterable<string>
}

// Selector keys whose value is itself KEY:VALUE; in allowWithin they must name the inner key.
const KEYED = new Set(['k8s:pod-label', 'aws_iid:tag', 'x509pop:subject'])
const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

class Walker {
  constructor(
    private readonly lines: LineCounter,
    private readonly opts: ParsePolicyOptions,
    private readonly domains: Set<string>,
  ) {}

  fail(node: Node | null | undefined, path: string, problem: string, cause?: unknown): never {
    const offset = node?.range?.[0] ?? 0
    const { line, col } = this.lines.linePos(offset)
    throw new PolicyError({ line, column: col, path }, problem, cause === undefined ? undefined : { cause })
  }

  map(node: Node | null | undefined, path: string, allowed: string[]): Map<string, Node> {
    if (isAlias(node)) this.fail(node, path, 'anchors and aliases are not allowed in a policy')
    if (!isMap(node)) this.fail(node, path, 'expected a mapping')
    const out = new Map<string, Node>()
    for (const pair of node.items) {
      const key = pair.key as Node | null
      if (!isScalar(key) || typeof key.value !== 'string') this.fail(key, path, 'keys must be strings')
      const name = key.value as string
      const at = path ? `${path}.${name}` : name
      if (!allowed.includes(name)) {
        this.fail(key, at, `unknown key ${JSON.stringify(name)} (allowed here: ${allowed.join(', ')})`)
      }
      const value = pair.value as Node | null
      if (value === null || (isScalar(value) && value.value === null)) {
        this.fail(value ?? key, at, 'has no value')
      }
      out.set(name, value)
    }
    return out
  }

  seq(node: Node, path: string): Node[] {
    if (isAlias(node)) this.fail(node, path, 'anchors and aliases are not allowed in a policy')
    if (!isSeq(node)) this.fail(node, path, 'expected a list')
    return node.items as Node[]
  }

  scalar(node: Node, path: string): unknown {
    if (isAlias(node)) this.fail(node, path, 'anchors and aliases are not allowed in a policy')
    if (!isScalar(node)) this.fail(node, path, 'expected a single value, not a list or mapping')
    if (node.tag) this.fail(node, path, `tags (${node.tag}) are not allowed in a policy`)
    return node.value
  }

  string(node: Node, path: string): string {
    const v = this.scalar(node, path)
    if (typeof v !== 'string') this.fail(node, path, `expected a string, got ${JSON.stringify(v)}`)
    return v
  }

  spiffeId(node: Node, path: string): string {
    const id = this.string(node, path)
    const glob = isSpiffeGlob(id)
    if (glob && id.startsWith('spiffe://')) {
      const problem = globProblem(id)
      if (problem) this.fail(node, path, problem)
    }
    let td: string
    try {
      td = parseSpiffeId(glob ? globSkeleton(id) : id, { requireWorkloadPath: true }).trustDomain
    } catch (err) {
      if (!(err instanceof SpiffeIdError)) throw err
      const why = glob ? `SPIFFE ID glob ${JSON.stringify(id)} is invalid: ${err.message}` : err.message
      this.fail(node, path, why, err)
    }
    if (!this.domains.has(td)) {
      this.fail(
        node,
        path,
        `SPIFFE ID ${JSON.stringify(id)} is in trust domain ${JSON.stringify(td)}, not ${JSON.stringify(this.opts.trustDomain)} ` +
          'nor one it federates with; a policy may only name its own or federated identities',
      )
    }
    return id
  }

  selector(node: Node, path: string): string {
    const text = this.string(node, path)
    try {
      const s = parseSelector(text)
      return `${s.type}:${s.value}`
    } catch (err) {
      if (!(err instanceof SigilError)) throw err
      return this.fail(node, path, err.message, err)
    }
  }

  selectorKey(node: Node, path: string): string {
    const text = this.string(node, path)
    const [type = '', key = '', ...rest] = text.split(':')
    const kind = selectorKinds[type]
    const hint =
      'write a selector key such as "k8s:ns", "unix:uid" or "k8s:pod-label:app.kubernetes.io/part-of"'
    if (!kind)
      this.fail(
        node,
        path,
        `${JSON.stringify(text)} has unknown selector type ${JSON.stringify(type)}; ${hint}`,
      )
    if (!kind.keys[key]) {
      this.fail(
        node,
        path,
        `${JSON.stringify(text)} has unknown key ${JSON.stringify(key)} for type ${type}; ${hint}`,
      )
    }
    const keyed = KEYED.has(`${type}:${key}`)
    if (keyed && (rest.length !== 1 || rest[0] === '')) {
      this.fail(node, path, `${JSON.stringify(text)} must name the inner key, as in "${type}:${key}:NAME"`)
    }
    if (!keyed && rest.length > 0) {
      this.fail(
        node,
        path,
        `${JSON.stringify(text)} is a selector, not a selector key; drop the value, as in "${type}:${key}"`,
      )
    }
    return text
  }

  fqdn(node: Node, path: string): string {
    const name = this.string(node, path)
    const problem = fqdnProblem(name)
    if (problem) this.fail(node, path, problem)
    return name
  }

  ports(node: Node, path: string): PortRange[] {
    const items = this.seq(node, path)
    if (items.length === 0) this.fail(node, path, 'is empty; leave ports out to allow every port')
    const out = items.map((item, i) => this.port(item, `${path}[${i}]`))
    return mergePorts(out)
  }

  port(node: Node, path: string): PortRange {
    const v = this.scalar(node, path)
    const check = (p: number, text: unknown): number => {
      if (!Number.isInteger(p)) this.fail(node, path, `port ${JSON.stringify(text)} is not an integer`)
      if (p < 1 || p > 65535) this.fail(node, path, `port ${p} is out of range 1-65535`)
      return p
    }
    if (typeof v === 'number') {
      const p = check(v, v)
      return { from: p, to: p }
    }
    if (typeof v === 'string') {
      const m = /^(\d{1,5})-(\d{1,5})$/.exec(v)
      if (!m)
        this.fail(node, path, `port ${JSON.stringify(v)} is neither a number nor a range such as "8000-8080"`)
      const from = check(Number(m[1]), m[1])
      const to = check(Number(m[2]), m[2])
      if (from > to)
        this.fail(node, path, `port range ${JSON.stringify(v)} is reversed; write "${to}-${from}"`)
      return { from, to }
    }
    return this.fail(
      node,
      path,
      `port ${JSON.stringify(v)} is neither a number nor a range such as "8000-8080"`,
    )
  }

  source(node: Node, path: string): Source {
    const m = this.map(node, path, ['spiffeId', 'selector'])
    const out: Source = {}
    const id = m.get('spiffeId')
    if (id) out.spiffeId = this.spiffeId(id, `${path}.spiffeId`)
    const sel = m.get('selector')
    if (sel) out.selector = this.selector(sel, `${path}.selector`)
    if (!id && !sel) this.fail(node, path, 'names nothing; give a spiffeId or a selector')
    return out
  }

  destination(node: Node, path: string): Destination {
    const m = this.map(node, path, ['spiffeId', 'selector', 'fqdn', 'ports'])
    const out: Destination = {}
    const id = m.get('spiffeId')
    const sel = m.get('selector')
    const fqdn = m.get('fqdn')
    const ports = m.get('ports')
    if (id && fqdn) {
      this.fail(
        fqdn,
        `${path}.fqdn`,
        'fqdn and spiffeId cannot be combined; an outside name has no SPIFFE ID, write two rules',
      )
    }
    if (id) out.spiffeId = this.spiffeId(id, `${path}.spiffeId`)
    if (sel) out.selector = this.selector(sel, `${path}.selector`)
    if (fqdn) out.fqdn = this.fqdn(fqdn, `${path}.fqdn`)
    if (ports) out.ports = this.ports(ports, `${path}.ports`)
    if (!id && !sel && !fqdn) this.fail(node, path, 'names nothing; give a spiffeId, a selector or an fqdn')
    return out
  }

  rule(node: Node, path: string, seen: Map<string, string>): Rule {
    const m = this.map(node, path, ['name', 'action', 'from', 'to'])
    const nameNode = m.get('name')
    if (!nameNode) this.fail(node, path, 'has no name')
    const name = this.string(nameNode, `${path}.name`)
    if (!RULE_NAME.test(name)) {
      this.fail(
        nameNode,
        `${path}.name`,
        `rule name ${JSON.stringify(name)} must be 1-128 letters, digits, ".", "-" or "_"`,
      )
    }
    const first = seen.get(name)
    if (first)
      this.fail(
        nameNode,
        `${path}.name`,
        `duplicate rule name ${JSON.stringify(name)} (first used at ${first})`,
      )
    seen.set(name, path)
    let action: Action = 'allow'
    const actionNode = m.get('action')
    if (actionNode) {
      const a = this.string(actionNode, `${path}.action`)
      if (a !== 'allow' && a !== 'deny') {
        this.fail(actionNode, `${path}.action`, `action ${JSON.stringify(a)} is neither allow nor deny`)
      }
      action = a
    }
    const from = m.get('from')
    const to = m.get('to')
    if (!from) this.fail(node, path, 'has no "from"')
    if (!to) this.fail(node, path, 'has no "to"')
    return { name, action, from: this.source(from, `${path}.from`), to: this.destination(to, `${path}.to`) }
  }

  policy(node: Node | null): Policy {
    if (node === null) this.fail(null, '', 'the policy is empty; start with "mode: baseline"')
    const m = this.map(node, '', ['mode', 'allowWithin', 'rules'])
    let mode: Mode = 'baseline'
    const modeNode = m.get('mode')
    if (modeNode) {
      const v = this.string(modeNode, 'mode')
      if (v !== 'baseline' && v !== 'explicit') {
        this.fail(modeNode, 'mode', `mode ${JSON.stringify(v)} is neither baseline nor explicit`)
      }
      mode = v
    }
    const within = m.get('allowWithin')
    const allowWithin = within
      ? this.seq(within, 'allowWithin').map((n, i) => this.selectorKey(n, `allowWithin[${i}]`))
      : []
    const rulesNode = m.get('rules')
    const seen = new Map<string, string>()
    const rules = rulesNode
      ? this.seq(rulesNode, 'rules').map((n, i) => this.rule(n, `rules[${i}]`, seen))
      : []
    return { mode, allowWithin, rules }
  }
}

export function parsePolicy(text: string, opts: ParsePolicyOptions): Policy {
  if (typeof text !== 'string') throw new TypeError('policy text must be a string')
  if (!opts || typeof opts.trustDomain !== 'string') throw new TypeError('opts.trustDomain must be a string')
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true })
  const problem = doc.errors[0] ?? doc.warnings[0]
  if (problem) {
    const pos = problem.linePos?.[0] ?? lineCounter.linePos(problem.pos[0])
    const message =
      problem.code === 'MULTIPLE_DOCS'
        ? 'a policy is a single YAML document; remove the extra "---"'
        : (problem.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')
    throw new PolicyError({ line: pos.line, column: pos.col, path: '' }, `YAML: ${message}`, {
      cause: problem,
    })
  }
  const domains = new Set([opts.trustDomain, ...(opts.federatesWith ?? [])])
  const walker = new Walker(lineCounter, opts, domains)
  return walker.policy(doc.contents as Node | null)
}
