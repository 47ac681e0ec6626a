// What the proxy knows of certificates: a CertificateSource (the agent's identity cache seen through a
// narrow interface: the proxy never talks to the CA) and the TLS material built from it. Private keys
// stay in memory; a SecureContext is built once per certificate and reused until the SVID rotates.
//
// The mesh is TLS 1.3 only (both ends are Sigil agents). Peers are verified by OpenSSL against the trust
// domain's roots and the federated trust domains' (chain, validity, key usage), then by SPIFFE ID: the
// server must prove the exact ID the upstream expects, and a client must hold an ID of the trust domain
// or of a federated one. Because OpenSSL sees one pool of roots, trustsPeer() also checks that the
// chain ends in a root of the trust domain the peer's SPIFFE ID names: a federated CA never vouches for
// this trust domain's identities, nor for a third one's.

import { createHash, createPrivateKey, type X509Certificate } from 'node:crypto'
import {
  createSecureContext,
  type DetailedPeerCertificate,
  type PeerCertificate,
  type SecureContext,
} from 'node:tls'
import { toPem } from '../daemon/keys.ts'
import type { Selector, X509SvidMaterial } from '../workload-api/identity-source.ts'

export interface AgentCredentials {
  spiffeId: string
  certChainPem: string
  keyPem: string
}

export interface CertificateSource {
  readonly trustDomain: string
  /** The SVID a workload with these selectors holds (the first, when it has several). */
  forWorkload(selectors: Selector[]): X509SvidMaterial | undefined
  /** The current SVID of an identity this agent serves (for a service it offers on the mesh). */
  byId(spiffeId: string): X509SvidMaterial | undefined
  /** Selectors of the entries for this identity (for allowWithin on the destination side). */
  selectorsOf(spiffeId: string): string[]
  /** The agent's own SVID: the mesh client certificate of unidentified sources. */
  agent(): AgentCredentials | undefined
  /** Roots of the trust domain (DER). */
  roots(): Buffer[]
  /** Roots (DER) of the federated trust domains whose peers are accepted, by trust domain name. */
  federatedRoots?(): Map<string, Buffer[]>
  onChange(listener: () => void): () => void
}

/** SPIFFE ID prefix of agents' own SVIDs (CONTRACT.md). */
export const AGENT_ID_SEGMENT = '/sigil/agent/'

export function isAgentId(spiffeId: string): boolean {
  try {
    return new URL(spiffeId).pathname.startsWith(AGENT_ID_SEGMENT)
  } catch {
    return false
  }
}

/** The URI SAN of a certificate as node:tls reports it, when there is exactly one SPIFFE ID. */
export function spiffeIdOf(cert: PeerCertificate | X509Certificate | undefined): string | undefined {
  if (!cert) return undefined
  const san = 'subjectaltname' in cert ? cert.subjectaltname : (cert as X509Certificate).subjectAltName
  if (!san) return undefined
  const uris = san
    .split(', ')
    .filter((s: string) => s.startsWith('URI:'))
    .map((s: string) => s.slice(4))
  return uris.length === 1 && uris[0]!.startsWith('spiffe://') ? uris[0] : undefined
}

export function trustDomainOf(spiffeId: string): string {
  return spiffeId.slice('spiffe://'.length).split('/')[0]!
}

/** Builds and caches the SecureContexts for SVIDs and the agent's own certificate. */
export class TlsMaterial {
  readonly #source: CertificateSource
  #byLeaf = new WeakMap<Buffer, SecureContext>()
  #agent: { pem: string; context: SecureContext } | undefined
  #rootsPem = ''
  #rootsDer: Buffer[] = []
  /** Trust domain -> its roots (DER, base64), own and federated: which root may anchor whose peers. */
  #anchors = new Map<string, Set<string>>()
  #ids = new WeakMap<Buffer, number>()
  #nextId = 1

  constructor(source: CertificateSource) {
    this.#source = source
    source.onChange(() => this.#refreshRoots())
    this.#refreshRoots()
  }

  get rootsPem(): string {
    return this.#rootsPem
  }

  /** A stable number per certificate, for pool keys: a new SVID gets a new number. */
  generation(svid: X509SvidMaterial): number {
    const leaf = svid.certChainDer[0]!
    let id = this.#ids.get(leaf)
    if (id === undefined) {
      id = this.#nextId++
      this.#ids.set(leaf, id)
    }
    return id
  }

  forSvid(svid: X509SvidMaterial): SecureContext {
    const leaf = svid.certChainDer[0]!
    let ctx = this.#byLeaf.get(leaf)
    if (!ctx) {
      const key = createPrivateKey({ key: svid.privateKeyDer, format: 'der', type: 'pkcs8' })
      ctx = this.#context(
        svid.certChainDer.map((d) => toPem(d, 'CERTIFICATE')).join(''),
        key.export({ format: 'pem', type: 'pkcs8' }).toString(),
      )
      this.#byLeaf.set(leaf, ctx)
    }
    return ctx
  }

  forAgent(): { spiffeId: string; context: SecureContext; generation: string } | undefined {
    const creds = this.#source.agent()
    if (!creds) return undefined
    if (this.#agent?.pem !== creds.certChainPem) {
      this.#agent = { pem: creds.certChainPem, context: this.#context(creds.certChainPem, creds.keyPem) }
    }
    return {
      spiffeId: creds.spiffeId,
      context: this.#agent.context,
      generation: creds.certChainPem.slice(-80),
    }
  }

  /**
   * Whether a peer whose chain OpenSSL accepted may hold `peerId`: its trust domain is this one or a
   * federated one, and its chain ends in a root of that very trust domain.
   */
  trustsPeer(peerId: string, cert: DetailedPeerCertificate | PeerCertificate | undefined): boolean {
    return this.trustsPeerRoot(peerId, chainRoot(cert))
  }

  /** As trustsPeer, given the chain's root (chainRoot): a check per request of a connection known once. */
  trustsPeerRoot(peerId: string, root: string | undefined): boolean {
    const anchors = this.#anchors.get(trustDomainOf(peerId))
    return root !== undefined && anchors?.has(root) === true
  }

  #refreshRoots(): void {
    const own = this.#source.roots()
    const federated = [...(this.#source.federatedRoots?.() ?? new Map<string, Buffer[]>())].filter(
      ([td]) => td !== this.#source.trustDomain,
    )
    const roots = [...own, ...federated.flatMap(([, r]) => r)]
    this.#anchors = new Map([
      [this.#source.trustDomain, new Set(own.map((r) => r.toString('base64')))],
      ...federated.map(([td, r]): [string, Set<string>] => [td, new Set(r.map((d) => d.toString('base64')))]),
    ])
    if (roots.length === this.#rootsDer.length && roots.every((r, i) => r.equals(this.#rootsDer[i]!))) return
    this.#rootsDer = roots
    this.#rootsPem = roots.map((d) => toPem(d, 'CERTIFICATE')).join('')
    // Contexts carry the roots: build them again on next use.
    this.#byLeaf = new WeakMap()
    this.#agent = undefined
  }

  #context(certPem: string, keyPem: string): SecureContext {
    return createSecureContext({
      cert: certPem,
      key: keyPem,
      ca: this.#rootsPem || undefined,
      minVersion: 'TLSv1.3',
    })
  }
}

/** SNI for a destination identity: SNI carries host names, so the SPIFFE ID is named by its hash. */
export function sniFor(spiffeId: string): string {
  return `s${createHash('sha256').update(spiffeId).digest('hex').slice(0, 40)}.mesh.sigil.invalid`
}

/** The last certificate of a peer's verified chain (base64 DER), which must be a known root. */
export function chainRoot(cert: DetailedPeerCertificate | PeerCertificate | undefined): string | undefined {
  if (!cert) return undefined
  let current = cert as DetailedPeerCertificate
  for (let depth = 0; depth < 10; depth++) {
    const issuer = current.issuerCertificate
    if (!issuer || issuer === current || issuer.raw?.equals(current.raw)) break
    current = issuer
  }
  return current.raw?.toString('base64')
}
