// The agent's proxy configuration (CONTRACT.md, "The agent's proxy configuration"): which local services
// this agent offers to the mesh, which remote services local apps reach through it, and the egress and
// transparent listeners. Parsed strictly, like the policy file: an unknown key or a bad address is
// refused with its line, because a typo here silently exposes or hides a service.
//
// Beyond the contract:
//   - upstreams[].service: the far agent's service name when it differs from the upstream's name.
//   - upstreams[].match: "IP:PORT", the original destination that transparent mode maps to this upstream
//     (then `listen` is optional).
//   - transparent.listen: where iptables REDIRECT sends intercepted connections (SO_ORIGINAL_DST).
//   - upstreams[].tunnel: reach the service through the trust service's tunnel broker instead of a direct
//     `agent` address (the two environments need not reach each other); needs `broker.servers`.

import { isIP } from 'node:net'
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml'
import { parseSpiffeId, SpiffeIdError } from '../../services/authority/spiffe-id.ts'

export interface HostPort {
  host: string
  port: number
}

export interface ServiceConfig {
  name: string
  spiffeId: string
  forward: HostPort
}

export interface UpstreamConfig {
  name: string
  listen?: HostPort
  /** Transparent mode: the original destination that maps to this upstream. */
  match?: HostPort
  spiffeId: string
  /** The far agent's mesh address; absent for a tunnel. */
  agent?: HostPort
  /** The tunnel (declared in the trust service) that leads to the service, instead of `agent`. */
  tunnel?: string
  /** The service name on the far agent (default: name). */
  service: string
}

export interface ProxyConfig {
  mesh?: { listen: HostPort }
  services: ServiceConfig[]
  upstreams: UpstreamConfig[]
  egress?: { listen: HostPort }
  transparent?: { listen: HostPort }
  /** Tunnel brokers this agent dials out to (all of them, for failover). */
  broker?: { servers: HostPort[] }
}

export class ProxyConfigError extends Error {
  override name = 'ProxyConfigError'
  readonly code = 'PROXY_CONFIG_INVALID'
  constructor(
    readonly line: number,
    readonly path: string,
    problem: string,
  ) {
    super(`line ${line}, ${path || '(document)'}: ${problem}`)
  }
}

const NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/

export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`
}

export function parseHostPort(text: string, allowZero = false): HostPort | string {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text)
  if (!m) return 'expected HOST:PORT (an IPv6 address in brackets: [::1]:15008)'
  const host = (m[1] ?? m[2])!
  const port = Number(m[3])
  if (port > 65535 || (port < 1 && !allowZero)) return `port ${port} is out of range (1-65535)`
  if (m[1] && isIP(host) !== 6) return `${host} is not an IPv6 address`
  if (!m[1] && isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(host))
    return `${JSON.stringify(host)} is not a host name or IP address`
  return { host, port }
}

class Reader {
  constructor(private readonly lines: LineCounter) {}

  fail(node: Node | null | undefined, path: string, problem: string): never {
    const { line } = this.lines.linePos(node?.range?.[0] ?? 0)
    throw new ProxyConfigError(line, path, problem)
  }

  map(node: Node | null | undefined, path: string, allowed: string[]): Map<string, Node> {
    if (!isMap(node)) this.fail(node, path, 'expected a mapping')
    const out = new Map<string, Node>()
    for (const pair of node.items) {
      const key = pair.key as Node
      const name = isScalar(key) ? String(key.value) : ''
      const at = path ? `${path}.${name}` : name
      if (!allowed.includes(name))
        this.fail(key, at, `unknown key ${JSON.stringify(name)} (allowed here: ${allowed.join(', ')})`)
      out.set(name, pair.value as Node)
    }
    return out
  }

  list(node: Node | undefined, path: string): Node[] {
    if (node === undefined || (isScalar(node) && node.value === null)) return []
    if (!isSeq(node)) this.fail(node, path, 'expected a list')
    return node.items as Node[]
  }

  string(node: Node | undefined, path: string, parent: Node): string {
    if (node === undefined) this.fail(parent, path, 'is required')
    if (!isScalar(node) || typeof node.value !== 'string' || node.value === '')
      this.fail(node, path, 'expected a non-empty string')
    return node.value
  }

  /** HOST:PORT; a listener may give port 0 (any free port, logged at start). */
  hostPort(node: Node | undefined, path: string, parent: Node, listener = false): HostPort {
    const text = this.string(node, path, parent)
    const hp = parseHostPort(text, listener)
    if (typeof hp === 'string') this.fail(node, path, hp)
    return hp
  }

  name(node: Node | undefined, path: string, parent: Node): string {
    const name = this.string(node, path, parent)
    if (!NAME.test(name))
      this.fail(
        node,
        path,
        `${JSON.stringify(name)}: use lower-case letters, digits, '-' and '.' (a DNS label)`,
      )
    return name
  }

  spiffeId(node: Node | undefined, path: string, parent: Node): string {
    const id = this.string(node, path, parent)
    try {
      parseSpiffeId(id, { requireWorkloadPath: true })
    } catch (err) {
      if (err instanceof SpiffeIdError) this.fail(node, path, err.message)
      throw err
    }
    return id
  }
}

export function parseProxyConfig(text: string): ProxyConfig {
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length) {
    const e = doc.errors[0]!
    throw new ProxyConfigError(e.linePos?.[0]?.line ?? 1, '', e.message.split('\n')[0]!)
  }
  const r = new Reader(lines)
  const root = doc.contents as Node
  const top = r.map(root, '', ['mesh', 'services', 'upstreams', 'egress', 'transparent', 'broker'])
  const config: ProxyConfig = { services: [], upstreams: [] }

  const listener = (key: 'mesh' | 'egress' | 'transparent') => {
    const node = top.get(key)
    if (!node) return undefined
    const m = r.map(node, key, ['listen'])
    return { listen: r.hostPort(m.get('listen'), `${key}.listen`, node, true) }
  }
  const mesh = listener('mesh')
  if (mesh) config.mesh = mesh
  const egress = listener('egress')
  if (egress) config.egress = egress
  const transparent = listener('transparent')
  if (transparent) config.transparent = transparent

  const brokerNode = top.get('broker')
  if (brokerNode) {
    const m = r.map(brokerNode, 'broker', ['servers'])
    const servers = r
      .list(m.get('servers'), 'broker.servers')
      .map((n, i) => r.hostPort(n, `broker.servers[${i}]`, brokerNode))
    if (servers.length === 0) r.fail(brokerNode, 'broker.servers', 'list at least one broker HOST:PORT')
    config.broker = { servers }
  }

  const names = new Set<string>()
  r.list(top.get('services'), 'services').forEach((node, i) => {
    const at = `services[${i}]`
    const m = r.map(node, at, ['name', 'spiffeId', 'forward'])
    const name = r.name(m.get('name'), `${at}.name`, node)
    if (names.has(name)) r.fail(m.get('name'), `${at}.name`, `service ${name} is listed twice`)
    names.add(name)
    config.services.push({
      name,
      spiffeId: r.spiffeId(m.get('spiffeId'), `${at}.spiffeId`, node),
      forward: r.hostPort(m.get('forward'), `${at}.forward`, node),
    })
  })
  if (config.services.length && !config.mesh)
    r.fail(top.get('services'), 'services', 'services are offered on the mesh port: add mesh.listen')

  const upstreamNames = new Set<string>()
  const listens = new Set<string>()
  r.list(top.get('upstreams'), 'upstreams').forEach((node, i) => {
    const at = `upstreams[${i}]`
    const m = r.map(node, at, ['name', 'listen', 'match', 'spiffeId', 'agent', 'tunnel', 'service'])
    const name = r.name(m.get('name'), `${at}.name`, node)
    if (upstreamNames.has(name)) r.fail(m.get('name'), `${at}.name`, `upstream ${name} is listed twice`)
    upstreamNames.add(name)
    const up: UpstreamConfig = {
      name,
      spiffeId: r.spiffeId(m.get('spiffeId'), `${at}.spiffeId`, node),
      service: m.has('service') ? r.name(m.get('service'), `${at}.service`, node) : name,
    }
    if (m.has('tunnel') === m.has('agent'))
      r.fail(node, at, 'give exactly one of agent: HOST:PORT (direct) or tunnel: NAME (through the broker)')
    if (m.has('agent')) up.agent = r.hostPort(m.get('agent'), `${at}.agent`, node)
    else {
      up.tunnel = r.name(m.get('tunnel'), `${at}.tunnel`, node)
      if (!brokerNode)
        r.fail(m.get('tunnel'), `${at}.tunnel`, 'a tunnel needs broker.servers (the brokers to dial)')
    }
    if (m.has('listen')) {
      up.listen = r.hostPort(m.get('listen'), `${at}.listen`, node, true)
      const key = formatHostPort(up.listen)
      if (up.listen.port !== 0 && listens.has(key))
        r.fail(m.get('listen'), `${at}.listen`, `${key} is used twice`)
      listens.add(key)
    }
    if (m.has('match')) {
      up.match = r.hostPort(m.get('match'), `${at}.match`, node)
      if (isIP(up.match.host) === 0)
        r.fail(m.get('match'), `${at}.match`, 'match takes the IP:PORT an app connects to (transparent mode)')
      if (!top.has('transparent'))
        r.fail(m.get('match'), `${at}.match`, 'match needs transparent.listen (the REDIRECT target)')
    }
    if (!up.listen && !up.match)
      r.fail(node, at, 'give listen: HOST:PORT (apps connect there) or match: IP:PORT (transparent mode)')
    config.upstreams.push(up)
  })
  return config
}
