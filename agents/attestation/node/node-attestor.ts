// Node attestation, agent side: collects the evidence its server-side namesake verifies.

export interface AgentNodeAttestor {
  readonly name: 'join_token' | 'x509pop' | 'aws_iid' | 'k8s_psat' | 'gcp_iit' | 'azure_msi'
  /** The evidence for the first round. */
  evidence(): Promise<unknown>
  /** Answers a server challenge (challenge-response attestors only). */
  answer?(challenge: unknown): Promise<unknown>
}
