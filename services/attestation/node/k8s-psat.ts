// k8s_psat: the agent presents its pod's projected service account token (audience-bound, pod- and
// node-bound, short-lived). The server checks it against the cluster's keys, the service account
// allow list and, when configured, the API server's TokenReview (which also sees deleted pods).
//
// Without an allow list any pod of the cluster could mint a token and attest as its node's agent, so
// a cluster needs allowedServiceAccounts, or allowAnyServiceAccount: true to say that on purpose.

import { parsePemCertificates } from '../../authority/x509-chain.ts'
import { failed, quote } from '../errors.ts'
import { PreparedConfigs } from './config.ts'
import { COMPACT_JWS, evidenceObject, MAX_TOKEN_CHARS, requiredString } from './evidence.ts'
import { JwksSource, verifyJwt } from './jwt.ts'
import { reviewToken, type TokenReviewConfig } from './k8s-token-review.ts'
import type { NodeAttestationContext, NodeAttestationStep } from './node-attestor.ts'
import type { RegisteredAttestor } from './registry.ts'
import { agentId, Selectors } from './result.ts'

const NAME = 'k8s_psat'
const CLUSTER_NAME = '^[A-Za-z0-9._-]{1,63}$'
const DNS_LABELISH = '[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?'
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512']

const url = { type: 'string', pattern: '^https?://[^\\s]+$', maxLength: 2048 }

export const k8sPsatConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['clusters'],
  properties: {
    clusters: {
      type: 'object',
      minProperties: 1,
      maxProperties: 256,
      propertyNames: { pattern: CLUSTER_NAME },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['issuer', 'audience'],
        properties: {
          issuer: url,
          jwksUrl: url,
          audience: { type: 'string', minLength: 1, maxLength: 512 },
          allowedServiceAccounts: {
            type: 'array',
            minItems: 1,
            maxItems: 1024,
            items: { type: 'string', pattern: `^${DNS_LABELISH}:${DNS_LABELISH}$` },
          },
          allowAnyServiceAccount: { type: 'boolean' },
          tokenReview: {
            type: 'object',
            additionalProperties: false,
            required: ['apiServer', 'caPem', 'bearerToken'],
            properties: {
              apiServer: { type: 'string', pattern: '^https://[^\\s]+$', maxLength: 2048 },
              caPem: { type: 'string', minLength: 1, maxLength: 1_000_000 },
              bearerToken: { type: 'string', minLength: 1, maxLength: 16_384 },
            },
          },
        },
      },
    },
  },
}

export interface K8sClusterConfig {
  issuer: string
  jwksUrl?: string
  audience: string
  allowedServiceAccounts?: string[]
  allowAnyServiceAccount?: boolean
  tokenReview?: TokenReviewConfig
}

export interface K8sPsatConfig {
  clusters: Record<string, K8sClusterConfig>
}

interface PreparedCluster {
  config: K8sClusterConfig
  jwks: JwksSource
  allowed: Set<string> | undefined
}

function prepare(config: K8sPsatConfig): Map<string, PreparedCluster> {
  const clusters = new Map<string, PreparedCluster>()
  for (const [name, cluster] of Object.entries(config.clusters)) {
    if (!cluster.allowedServiceAccounts && cluster.allowAnyServiceAccount !== true) {
      throw new Error(
        `clusters.${name} needs allowedServiceAccounts (["namespace:serviceaccount", ...]), or allowAnyServiceAccount: true to let any pod of the cluster attest as its node's agent`,
      )
    }
    if (cluster.tokenReview)
      parsePemCertificates(cluster.tokenReview.caPem, `clusters.${name}.tokenReview.caPem`)
    const label = `cluster ${JSON.stringify(name)}`
    clusters.set(name, {
      config: cluster,
      jwks: new JwksSource(
        cluster.jwksUrl ? { jwksUrl: cluster.jwksUrl } : { issuer: cluster.issuer },
        `${NAME} ${label}`,
      ),
      allowed: cluster.allowedServiceAccounts ? new Set(cluster.allowedServiceAccounts) : undefined,
    })
  }
  return clusters
}

interface KubernetesClaims {
  namespace: string
  serviceAccount: { name: string; uid: string }
  pod: { name: string; uid: string }
  node: { name: string; uid: string }
}

function claimString(obj: unknown, key: string): string | undefined {
  if (typeof obj !== 'object' || obj === null) return undefined
  const v = (obj as Record<string, unknown>)[key]
  return typeof v === 'string' && v.length > 0 && v.length <= 253 ? v : undefined
}

function kubernetesClaims(payload: Record<string, unknown>, label: string): KubernetesClaims {
  const k = payload['kubernetes.io']
  const namespace = claimString(k, 'namespace')
  const sa = (k as Record<string, unknown> | undefined)?.serviceaccount
  const pod = (k as Record<string, unknown> | undefined)?.pod
  const node = (k as Record<string, unknown> | undefined)?.node
  const saName = claimString(sa, 'name')
  const saUid = claimString(sa, 'uid')
  if (!namespace || !saName || !saUid) {
    throw failed(
      `${NAME}: ${label}: token has no kubernetes.io namespace/serviceaccount claims; it is not a service account token`,
    )
  }
  const podName = claimString(pod, 'name')
  const podUid = claimString(pod, 'uid')
  if (!podName || !podUid) {
    throw failed(
      `${NAME}: ${label}: token is not bound to a pod; mount a projected service account token into the agent's pod`,
    )
  }
  const nodeName = claimString(node, 'name')
  const nodeUid = claimString(node, 'uid')
  if (!nodeName || !nodeUid) {
    throw failed(
      `${NAME}: ${label}: token is not bound to a node (kubernetes.io.node); the cluster must be Kubernetes 1.30 or later`,
    )
  }
  return {
    namespace,
    serviceAccount: { name: saName, uid: saUid },
    pod: { name: podName, uid: podUid },
    node: { name: nodeName, uid: nodeUid },
  }
}

export function createK8sPsatAttestor(): RegisteredAttestor {
  const configs = new PreparedConfigs(NAME, k8sPsatConfigSchema, prepare)
  return {
    name: NAME,
    configSchema: k8sPsatConfigSchema,
    validateConfig: (raw) => void configs.validate(raw),
    async attest(
      evidence: unknown,
      ctx: NodeAttestationContext,
      round?: unknown,
    ): Promise<NodeAttestationStep> {
      if (round !== undefined) throw new TypeError('k8s_psat has a single round')
      const clusters = configs.get(ctx.trustDomain, ctx.config)
      const obj = evidenceObject(NAME, evidence, ['cluster', 'token'])
      const clusterName = requiredString(NAME, obj, 'cluster', {
        max: 63,
        pattern: new RegExp(CLUSTER_NAME),
        patternHint: 'a cluster name',
      })
      const token = requiredString(NAME, obj, 'token', {
        max: MAX_TOKEN_CHARS,
        pattern: COMPACT_JWS,
        patternHint: 'a compact JWT',
      })
      const cluster = clusters.get(clusterName)
      if (!cluster) {
        throw failed(
          `${NAME}: cluster ${quote(clusterName)} is not configured for trust domain ${quote(ctx.trustDomain)} (configured: ${[...clusters.keys()].join(', ')})`,
        )
      }
      const label = `cluster ${quote(clusterName)}`
      const payload = await verifyJwt(NAME, token, cluster.jwks, ctx, {
        issuer: cluster.config.issuer,
        audience: cluster.config.audience,
        algorithms: ALGORITHMS,
        label,
      })
      const claims = kubernetesClaims(payload as Record<string, unknown>, label)
      const account = `${claims.namespace}:${claims.serviceAccount.name}`
      const username = `system:serviceaccount:${account}`
      if (payload.sub !== username) {
        throw failed(
          `${NAME}: ${label}: token subject ${quote(payload.sub)} does not match its kubernetes.io claims (${username})`,
        )
      }
      if (cluster.allowed && !cluster.allowed.has(account)) {
        throw failed(
          `${NAME}: ${label}: service account ${account} may not attest agents; add it to clusters.${clusterName}.allowedServiceAccounts`,
        )
      }
      if (cluster.config.tokenReview) {
        const user = await reviewToken(cluster.config.tokenReview, token, cluster.config.audience, label)
        if (user.username !== username) {
          throw failed(
            `${NAME}: ${label}: TokenReview says the token belongs to ${quote(user.username)}, not ${username}`,
          )
        }
        const podName = user.extra['authentication.kubernetes.io/pod-name']
        if (podName && podName.length > 0 && !podName.includes(claims.pod.name)) {
          throw failed(`${NAME}: ${label}: TokenReview names another pod than the token's ${claims.pod.name}`)
        }
      }
      const selectors = new Selectors(NAME)
        .add('cluster', clusterName)
        .add('agent_ns', claims.namespace)
        .add('agent_sa', claims.serviceAccount.name)
        .add('agent_pod_name', claims.pod.name)
        .add('agent_node_name', claims.node.name)
        .add('agent_node_uid', claims.node.uid)
      return {
        done: true,
        result: {
          agentId: agentId(ctx.trustDomain, NAME, clusterName, claims.node.uid),
          selectors: selectors.list,
          canReattest: true,
        },
      }
    },
  }
}
