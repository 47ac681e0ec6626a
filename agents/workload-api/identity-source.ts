// What the Workload API serves from: the agent's identity cache, seen through a narrow interface so the
// API never reaches the CA client (and tests can serve fixed material). Private keys here live in
// memory only; the Workload API hands each workload its own key, as the SPIFFE Workload API requires.

export interface Selector {
  type: string
  value: string
}

export interface X509SvidMaterial {
  spiffeId: string
  /** Leaf first, then intermediates (DER). */
  certChainDer: Buffer[]
  /** PKCS#8 DER of the SVID's private key, in memory only. */
  privateKeyDer: Buffer
  /** The roots of the SVID's own trust domain (DER). */
  bundleDer: Buffer[]
  /** Trust domains whose bundles this workload also gets (entry.federatesWith). */
  federatesWith: string[]
  hint?: string
  expiresAt: number
}

export interface JwtSvidMaterial {
  spiffeId: string
  token: string
  hint?: string
}

export interface IdentitySource {
  /** Every X509-SVID for a workload with these selectors (entries whose selectors are all matched). */
  x509Svids(selectors: Selector[]): X509SvidMaterial[]
  /** Trust domain name -> roots (DER): the agent's own trust domain and the federated ones. */
  x509Bundles(): Map<string, Buffer[]>
  /** JWT-SVIDs for the workload's identities (only `spiffeId`'s when given) and audience. */
  jwtSvids(selectors: Selector[], audience: string[], spiffeId?: string): Promise<JwtSvidMaterial[]>
  /** Trust domain name -> JWK Set JSON (as in the SPIFFE bundle's jwt-svid keys). */
  jwtBundles(): Map<string, { keys: Record<string, unknown>[] }>
  /**
   * Validates a JWT-SVID against the known JWT bundles (only those of `trustDomains`, when given);
   * throws when invalid.
   */
  validateJwt(
    token: string,
    audience: string,
    trustDomains?: ReadonlySet<string>,
  ): Promise<{ spiffeId: string; claims: Record<string, unknown> }>
  /** Called whenever SVIDs or bundles change (rotation, entry change, bundle change). */
  onChange(listener: () => void): () => void
}

/** Identifies the calling process from what the kernel says. */
export interface WorkloadAttestor {
  attest(caller: { pid: number; uid: number; gid: number }): Promise<Selector[]>
}
