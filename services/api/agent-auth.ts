// mTLS authentication of agents: the agent's X509-SVID is its TLS client certificate. The HTTPS server
// requests a certificate but does not require one (admins and the console use bearer tokens).

import { X509Certificate } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import type { FastifyRequest } from 'fastify'

/** The client certificate chain the peer presented, leaf first (empty without TLS or a certificate). */
export function peerChain(request: FastifyRequest): X509Certificate[] {
  const socket = request.raw.socket as Partial<TLSSocket>
  if (typeof socket.getPeerCertificate !== 'function') return []
  const chain: X509Certificate[] = []
  let cert = socket.getPeerCertificate(true)
  const seen = new Set<string>()
  while (cert?.raw && !seen.has(cert.fingerprint256) && chain.length < 8) {
    seen.add(cert.fingerprint256)
    chain.push(new X509Certificate(cert.raw))
    cert = cert.issuerCertificate
  }
  return chain
}
