// An agent attested through the real agent API (join token), talking to a test app over mTLS with its
// X509-SVID, through the agent's own HTTPS client.

import { TrustServiceClient } from '../../agents/daemon/server-client.ts'
import { derToPem } from '../../services/authority/pem.ts'
import type { TestApp } from './app.ts'
import { makeCsr } from './csr.ts'

export interface TestAgent {
  spiffeId: string
  client: TrustServiceClient
  certChainPem: string
  keyPem: string
}

/** Attests `spiffe://TD/sigil/agent/<node>` with a fresh join token; `h` must be built with https. */
export async function attestTestAgent(
  t: { teardown(fn: () => unknown): void },
  h: TestApp,
  trustDomain: string,
  node: string,
): Promise<TestAgent> {
  if (!h.url || !h.caPem) throw new TypeError('attestTestAgent needs buildTestApp(t, { https: true })')
  const spiffeId = `spiffe://${trustDomain}/sigil/agent/${node}`
  const td = await h.services.trustDomains.get(trustDomain)
  const { token } = await h.services.joinTokens.create(td, { spiffeId, ttl: 600 })
  const csr = await makeCsr()
  const res = await h.call(
    'POST',
    '/v1/agent/attest',
    { trustDomain, csr: csr.der.toString('base64'), attestor: 'join_token', evidence: { token } },
    null,
  )
  if (res.statusCode !== 200) throw new Error(`attestation of ${spiffeId} failed: ${res.body}`)
  const certChainPem = (res.json.certChain as string[])
    .map((b64) => derToPem(Buffer.from(b64, 'base64'), 'CERTIFICATE'))
    .join('')
  const client = new TrustServiceClient(new URL(h.url), h.caPem, { certChainPem, keyPem: csr.keyPem })
  t.teardown(() => client.close())
  return { spiffeId, client, certChainPem, keyPem: csr.keyPem }
}
