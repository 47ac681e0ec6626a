// An agent attested through the real agent API (a join token, over HTTPS) that reports flow records
// through `POST /v1/agent/flows` with its X509-SVID: how the console tests fill a trust domain with
// thousands of flows quickly. The records are validated and stored exactly as a proxy's would be.

import { TrustServiceClient } from '../../agents/daemon/server-client.ts'
import { derToPem } from '../../services/authority/pem.ts'
import type { ApiClient } from '../../services/cli/client.ts'
import type { FlowRecord } from '../../services/flows/flow.ts'
import { makeCsr } from './csr.ts'

export interface FlowReporter {
  spiffeId: string
  report(flows: FlowRecord[]): Promise<void>
}

export async function attestFlowReporter(
  t: { teardown(fn: () => unknown): void },
  server: { url: string; caPem: string },
  api: ApiClient,
  trustDomain: string,
  node: string,
): Promise<FlowReporter> {
  const spiffeId = `spiffe://${trustDomain}/sigil/agent/join_token/${node}`
  const { token } = await api.request<{ token: string }>(
    'POST',
    `/v1/trust-domains/${trustDomain}/join-tokens`,
    { spiffeId, ttl: 600 },
  )
  const csr = await makeCsr()
  const anonymous = new TrustServiceClient(new URL(server.url), server.caPem)
  const attested = await anonymous.post<{ certChain: string[] }>('/v1/agent/attest', {
    trustDomain,
    csr: csr.der.toString('base64'),
    attestor: 'join_token',
    evidence: { token },
  })
  anonymous.close()
  if (attested.status !== 200)
    throw new Error(`attestation of ${spiffeId} failed: ${JSON.stringify(attested.body)}`)
  const certChainPem = attested.body.certChain
    .map((b64) => derToPem(Buffer.from(b64, 'base64'), 'CERTIFICATE'))
    .join('')
  const client = new TrustServiceClient(new URL(server.url), server.caPem, {
    certChainPem,
    keyPem: csr.keyPem,
  })
  t.teardown(() => client.close())
  return {
    spiffeId,
    async report(flows) {
      for (let i = 0; i < flows.length; i += 1000) {
        const res = await client.post('/v1/agent/flows', { flows: flows.slice(i, i + 1000) })
        if (res.status !== 200) throw new Error(`flow report refused: ${JSON.stringify(res.body)}`)
      }
    },
  }
}

let sequence = 0

/** One egress flow record; the server fills in the reporting agent. */
export function flow(
  partial: Pick<FlowRecord, 'source' | 'destination' | 'verdict'> &
    Partial<Pick<FlowRecord, 'rule' | 'reason' | 'start' | 'bytesIn' | 'bytesOut' | 'mode'>>,
): FlowRecord {
  const record: FlowRecord = {
    id: `test-${process.pid}-${Date.now().toString(36)}-${sequence++}`,
    side: 'egress',
    start: partial.start ?? Date.now() - 60_000,
    durationMs: 12,
    source: partial.source,
    destination: partial.destination,
    bytesOut: partial.bytesOut ?? 420,
    bytesIn: partial.bytesIn ?? 1337,
    verdict: partial.verdict,
    reason: partial.reason ?? (partial.verdict === 'denied' ? 'refused by policy' : 'observed'),
    mode: partial.mode ?? 'baseline',
    policyVersion: 0,
  }
  if (partial.rule !== undefined) record.rule = partial.rule
  return record
}

/** A deterministic pseudo-random generator (mulberry32), so generated graphs are the same every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * A large flow graph: `workloads` identities in 8 namespaces, `externals` outside names and
 * `unidentified` processes as sources, joined by `edges` distinct (source, destination, port) edges.
 */
export function syntheticFlows(
  trustDomain: string,
  opts: { workloads: number; externals: number; unidentified: number; edges: number },
): FlowRecord[] {
  const rand = prng(42)
  const pick = <T>(list: readonly T[]) => list[Math.floor(rand() * list.length)]!
  const workloads = Array.from(
    { length: opts.workloads },
    (_, i) => `spiffe://${trustDomain}/ns/ns-${i % 8}/sa/svc-${i}`,
  )
  const externals = Array.from({ length: opts.externals }, (_, i) => `api-${i}.partner${i % 5}.example.com`)
  const tools = Array.from({ length: opts.unidentified }, (_, i) => `/usr/local/bin/tool-${i}`)
  const ports = [80, 443, 5432, 6379, 8080, 8443, 9090]
  const seen = new Set<string>()
  const out: FlowRecord[] = []
  const now = Date.now()
  let i = 0
  while (out.length < opts.edges) {
    // Every node appears: the first edges walk through each source and destination once.
    const fromTool = i < tools.length ? true : i < tools.length + workloads.length ? false : rand() < 0.1
    const source = fromTool
      ? { path: i < tools.length ? tools[i]! : pick(tools), sha256: 'ab'.repeat(32) }
      : {
          spiffeId:
            i >= tools.length && i < tools.length + workloads.length
              ? workloads[i - tools.length]!
              : pick(workloads),
        }
    const toExternal = i < externals.length ? true : rand() < 0.1
    const destination = toExternal
      ? { fqdn: i < externals.length ? externals[i]! : pick(externals), port: 443 }
      : { spiffeId: pick(workloads), port: pick(ports) }
    i++
    const key = `${source.path ?? source.spiffeId}|${destination.fqdn ?? destination.spiffeId}|${destination.port}`
    if (seen.has(key) || destination.spiffeId === source.spiffeId) continue
    seen.add(key)
    const roll = rand()
    const verdict = fromTool
      ? 'unidentified'
      : roll < 0.05
        ? 'denied'
        : roll < 0.1
          ? 'unidentified'
          : 'allowed'
    out.push(
      flow({
        source,
        destination,
        verdict,
        start: now - Math.floor(rand() * 30 * 60_000),
        ...(verdict === 'denied' ? { rule: 'deny-legacy' } : {}),
      }),
    )
  }
  return out
}
