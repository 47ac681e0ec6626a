import { randomUUID } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { SignJWT } from 'jose'
import t from 'tap'
import { createAgentNodeAttestor } from '../../agents/attestation/node/registry.ts'
import { createK8sPsatAttestor } from '../../services/attestation/node/k8s-psat.ts'
import { tempDir } from '../helpers/tools.ts'
import { refused } from './helpers/assert.ts'
import { attestationContext } from './helpers/context.ts'
import { json, startServer } from './helpers/http-server.ts'
import { startIssuer, type TestIssuer } from './helpers/oidc-issuer.ts'
import { makeCert } from './helpers/pki.ts'

const attestor = createK8sPsatAttestor()
const nodeUid = randomUUID()

/** Claims as the kubelet's projected service account tokens carry them (Kubernetes 1.30+). */
function claims(overrides: Record<string, unknown> = {}, k8s: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000)
  return {
    aud: ['sigil'],
    exp: now + 3600,
    iat: now,
    nbf: now,
    jti: randomUUID(),
    sub: 'system:serviceaccount:sigil:sigil-agent',
    'kubernetes.io': {
      namespace: 'sigil',
      node: { name: 'worker-1', uid: nodeUid },
      pod: { name: 'sigil-agent-x7k2p', uid: randomUUID() },
      serviceaccount: { name: 'sigil-agent', uid: randomUUID() },
      ...k8s,
    },
    ...overrides,
  }
}

function clusterConfig(issuer: TestIssuer, extra: Record<string, unknown> = {}) {
  return { issuer: issuer.url, audience: 'sigil', allowedServiceAccounts: ['sigil:sigil-agent'], ...extra }
}

t.test(
  'the agent presents its projected token; the server attests the node (discovery, cached JWKS)',
  async (t) => {
    const issuer = await startIssuer(t)
    const { ctx } = await attestationContext(t, { config: { clusters: { prod: clusterConfig(issuer) } } })
    const tokenPath = path.join(tempDir(t), 'token')
    writeFileSync(tokenPath, `${await issuer.sign(claims())}\n`)
    const agent = await createAgentNodeAttestor('k8s_psat', { cluster: 'prod', tokenPath })
    const evidence = await agent.evidence()
    const step = await attestor.attest(evidence, ctx)
    t.same(step, {
      done: true,
      result: {
        agentId: `spiffe://example.org/sigil/agent/k8s_psat/prod/${nodeUid}`,
        selectors: [
          { type: 'k8s_psat', value: 'cluster:prod' },
          { type: 'k8s_psat', value: 'agent_ns:sigil' },
          { type: 'k8s_psat', value: 'agent_sa:sigil-agent' },
          { type: 'k8s_psat', value: 'agent_pod_name:sigil-agent-x7k2p' },
          { type: 'k8s_psat', value: 'agent_node_name:worker-1' },
          { type: 'k8s_psat', value: `agent_node_uid:${nodeUid}` },
        ],
        canReattest: true,
      },
    })
    await attestor.attest(evidence, ctx)
    t.equal(issuer.jwksFetches(), 1, 'the JWKS is fetched once and cached')
  },
)

t.test('a rotated key is fetched after the cooldown, not on every unknown kid', async (t) => {
  const issuer = await startIssuer(t)
  const { ctx, clock } = await attestationContext(t, {
    config: { clusters: { prod: clusterConfig(issuer, { jwksUrl: issuer.jwksUrl }) } },
  })
  await attestor.attest({ cluster: 'prod', token: await issuer.sign(claims()) }, ctx)
  const kid = await issuer.addKey()
  const rotated = await issuer.sign(claims(), { kid })
  await refused(
    t,
    attestor.attest({ cluster: 'prod', token: rotated }, ctx),
    'ATTESTATION_FAILED',
    /no key of the issuer's JWKS matches/,
  )
  t.equal(issuer.jwksFetches(), 1, 'no refetch within the cooldown')
  clock.advance(31_000)
  const step = await attestor.attest({ cluster: 'prod', token: rotated }, ctx)
  t.ok(step.done)
  t.equal(issuer.jwksFetches(), 2)
})

t.test('tokens that must not attest', async (t) => {
  const prod = await startIssuer(t)
  const staging = await startIssuer(t)
  const { ctx } = await attestationContext(t, {
    config: { clusters: { prod: clusterConfig(prod), staging: clusterConfig(staging) } },
  })
  const cases: [string, () => Promise<unknown>, string, RegExp][] = [
    [
      'another audience',
      async () => ({ cluster: 'prod', token: await prod.sign(claims({ aud: ['vault'] })) }),
      'ATTESTATION_FAILED',
      /cluster "prod": token audience "vault" is not the configured "sigil"/,
    ],
    [
      'an expired token',
      async () => ({
        cluster: 'prod',
        token: await prod.sign(claims({ exp: Math.floor(Date.now() / 1000) - 120 })),
      }),
      'ATTESTATION_FAILED',
      /token expired 1[12]\ds ago/,
    ],
    [
      'another issuer',
      async () => ({ cluster: 'prod', token: await prod.sign(claims(), { iss: 'https://evil.example' }) }),
      'ATTESTATION_FAILED',
      /token issuer "https:\/\/evil.example" is not the configured/,
    ],
    [
      'a forged signature',
      async () => ({ cluster: 'prod', token: await prod.sign(claims(), { key: await prod.foreignKey() }) }),
      'ATTESTATION_FAILED',
      /signature does not verify/,
    ],
    [
      "another cluster's token",
      async () => ({ cluster: 'prod', token: await staging.sign(claims()) }),
      'ATTESTATION_FAILED',
      /cluster "prod": token (signature does not verify|issuer .* is not the configured)/,
    ],
    [
      "another cluster's token, its issuer claimed",
      async () => ({ cluster: 'prod', token: await staging.sign(claims(), { iss: prod.url }) }),
      'ATTESTATION_FAILED',
      /cluster "prod": token signature does not verify/,
    ],
    [
      'an unknown cluster',
      async () => ({ cluster: 'dev', token: await prod.sign(claims()) }),
      'ATTESTATION_FAILED',
      /cluster "dev" is not configured for trust domain "example.org" \(configured: prod, staging\)/,
    ],
    [
      'a service account not allowed',
      async () => ({
        cluster: 'prod',
        token: await prod.sign(
          claims(
            { sub: 'system:serviceaccount:default:default' },
            { namespace: 'default', serviceaccount: { name: 'default', uid: randomUUID() } },
          ),
        ),
      }),
      'ATTESTATION_FAILED',
      /service account default:default may not attest agents; add it to clusters.prod.allowedServiceAccounts/,
    ],
    [
      'a token not bound to a pod',
      async () => ({ cluster: 'prod', token: await prod.sign(claims({}, { pod: undefined })) }),
      'ATTESTATION_FAILED',
      /not bound to a pod/,
    ],
    [
      'a token not bound to a node',
      async () => ({ cluster: 'prod', token: await prod.sign(claims({}, { node: undefined })) }),
      'ATTESTATION_FAILED',
      /not bound to a node .*1\.30/,
    ],
    [
      'a subject that contradicts the claims',
      async () => ({
        cluster: 'prod',
        token: await prod.sign(claims({ sub: 'system:serviceaccount:kube-system:admin' })),
      }),
      'ATTESTATION_FAILED',
      /does not match its kubernetes.io claims/,
    ],
    [
      'no kubernetes.io claims',
      async () => ({ cluster: 'prod', token: await prod.sign(claims({ 'kubernetes.io': undefined })) }),
      'ATTESTATION_FAILED',
      /not a service account token/,
    ],
    [
      'no expiry',
      async () => ({ cluster: 'prod', token: await prod.sign(claims({ exp: undefined })) }),
      'ATTESTATION_FAILED',
      /claim exp check failed|"exp" claim/,
    ],
    [
      'an HMAC token',
      async () => ({
        cluster: 'prod',
        token: await new SignJWT(claims())
          .setProtectedHeader({ alg: 'HS256' })
          .setIssuer(prod.url)
          .sign(new Uint8Array(32)),
      }),
      'ATTESTATION_FAILED',
      /algorithm is not allowed/,
    ],
  ]
  for (const [what, make, code, message] of cases) {
    const evidence = await make()
    await refused(t, attestor.attest(evidence, ctx), code, message, {
      what,
      secret: (evidence as { token: string }).token,
    })
  }
})

t.test('garbage evidence is refused', async (t) => {
  const issuer = await startIssuer(t)
  const { ctx } = await attestationContext(t, { config: { clusters: { prod: clusterConfig(issuer) } } })
  const good = await issuer.sign(claims())
  for (const evidence of [
    null,
    [],
    { token: good },
    { cluster: 'prod' },
    { cluster: 'prod', token: 42 },
    { cluster: 'prod', token: 'not a jwt' },
    { cluster: 'prod', token: `${good}.${good}` },
    { cluster: 'prod', token: 'a'.repeat(20_000) },
    { cluster: '../etc', token: good },
    { cluster: 'prod', token: good, node: 'worker-1' },
  ]) {
    await refused(t, attestor.attest(evidence, ctx), 'ATTESTATION_EVIDENCE_INVALID', /^k8s_psat evidence/, {
      what: JSON.stringify(evidence)?.slice(0, 40),
      secret: good,
    })
  }
  await refused(
    t,
    attestor.attest({ cluster: 'prod', token: 'aaa.bbb.ccc' }, ctx),
    'ATTESTATION_EVIDENCE_INVALID',
    /not a usable JWT/,
  )
})

t.test('an unreachable or inconsistent issuer is an upstream error', async (t) => {
  const issuer = await startIssuer(t, { discoveryIssuer: 'https://elsewhere.example' })
  const { ctx, with: withConfig } = await attestationContext(t, {
    config: {
      clusters: { prod: { issuer: 'http://127.0.0.1:9', audience: 'sigil', allowAnyServiceAccount: true } },
    },
  })
  const token = await issuer.sign(claims())
  await refused(
    t,
    attestor.attest({ cluster: 'prod', token }, ctx),
    'ATTESTATION_UPSTREAM_UNAVAILABLE',
    /OIDC discovery: GET http:\/\/127.0.0.1:9\/.well-known\/openid-configuration failed/,
  )
  const lying = withConfig({ clusters: { prod: clusterConfig(issuer) } })
  await refused(
    t,
    attestor.attest({ cluster: 'prod', token }, lying),
    'ATTESTATION_UPSTREAM_UNAVAILABLE',
    /names issuer "https:\/\/elsewhere.example", not the configured/,
  )
})

t.test('configuration: allow lists are explicit, names and URLs are checked', async (t) => {
  const c = { issuer: 'https://kubernetes.default.svc', audience: 'sigil' }
  t.throws(() => attestor.validateConfig({ clusters: { prod: c } }), {
    code: 'ATTESTATION_CONFIG_INVALID',
    message: /clusters.prod needs allowedServiceAccounts .* allowAnyServiceAccount: true/,
  })
  t.doesNotThrow(() =>
    attestor.validateConfig({ clusters: { prod: { ...c, allowAnyServiceAccount: true } } }),
  )
  t.throws(() => attestor.validateConfig({ clusters: {} }), {
    message: /must NOT have fewer than 1 properties/,
  })
  t.throws(() => attestor.validateConfig({ clusters: { 'a/b': { ...c, allowAnyServiceAccount: true } } }), {
    message: /clusters has a key "a\/b" that must match pattern/,
  })
  t.throws(
    () => attestor.validateConfig({ clusters: { prod: { ...c, allowedServiceAccounts: ['nonamespace'] } } }),
    { message: /allowedServiceAccounts.0 must match pattern/ },
  )
  t.throws(
    () =>
      attestor.validateConfig({
        clusters: {
          prod: {
            ...c,
            allowAnyServiceAccount: true,
            tokenReview: { apiServer: 'http://x', caPem: 'x', bearerToken: 'y' },
          },
        },
      }),
    { message: /tokenReview.apiServer must match pattern/ },
  )
  await t.rejects(
    createAgentNodeAttestor('k8s_psat', { cluster: 'prod', tokenPath: '/nonexistent/token' }).then((a) =>
      a.evidence(),
    ),
    {
      code: 'ATTESTATION_EVIDENCE_UNAVAILABLE',
      message: /cannot read the service account token at \/nonexistent\/token \(ENOENT\)/,
    },
  )
})

t.test('TokenReview: the API server has the last word', async (t) => {
  const issuer = await startIssuer(t)
  const ca = await makeCert({ subject: 'CN=Test Kubernetes CA', ca: true })
  const serving = await makeCert({ subject: 'CN=kube-apiserver', issuer: ca, ips: ['127.0.0.1'] })
  const otherCa = await makeCert({ subject: 'CN=Another CA', ca: true })
  const revoked = new Set<string>()
  const apiServer = await startServer(
    t,
    (req, res, body) => {
      if (req.headers.authorization !== 'Bearer reviewer-token')
        return json(res, 401, { kind: 'Status', code: 401 })
      if (req.method !== 'POST' || req.url !== '/apis/authentication.k8s.io/v1/tokenreviews')
        return json(res, 404, {})
      const review = JSON.parse(body)
      const ok = !revoked.has(review.spec.token)
      json(res, 201, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: review.spec,
        status: ok
          ? {
              authenticated: true,
              audiences: review.spec.audiences,
              user: {
                username: 'system:serviceaccount:sigil:sigil-agent',
                uid: randomUUID(),
                groups: ['system:serviceaccounts'],
                extra: { 'authentication.kubernetes.io/pod-name': ['sigil-agent-x7k2p'] },
              },
            }
          : { authenticated: false, error: 'token has been invalidated' },
      })
    },
    { key: serving.keyPem, cert: serving.pem },
  )
  const review = { apiServer: apiServer.url, caPem: ca.pem, bearerToken: 'reviewer-token' }
  const { ctx, with: withConfig } = await attestationContext(t, {
    config: { clusters: { prod: clusterConfig(issuer, { tokenReview: review }) } },
  })
  const token = await issuer.sign(claims())
  t.ok((await attestor.attest({ cluster: 'prod', token }, ctx)).done)
  const sent = JSON.parse(apiServer.requests[0]!.body)
  t.same(sent.spec.audiences, ['sigil'], 'the review asks for the configured audience')

  revoked.add(token)
  await refused(
    t,
    attestor.attest({ cluster: 'prod', token }, ctx),
    'ATTESTATION_FAILED',
    /the API server does not accept the token \("token has been invalidated"\); was its pod deleted\?/,
    { secret: token },
  )
  const denied = withConfig({
    clusters: { prod: clusterConfig(issuer, { tokenReview: { ...review, bearerToken: 'wrong' } }) },
  })
  await refused(
    t,
    attestor.attest({ cluster: 'prod', token }, denied),
    'ATTESTATION_UPSTREAM_UNAVAILABLE',
    /refused the TokenReview \(HTTP 401\); tokenReview.bearerToken needs permission/,
    { secret: token },
  )
  const untrusted = withConfig({
    clusters: { prod: clusterConfig(issuer, { tokenReview: { ...review, caPem: otherCa.pem } }) },
  })
  await refused(
    t,
    attestor.attest({ cluster: 'prod', token }, untrusted),
    'ATTESTATION_UPSTREAM_UNAVAILABLE',
    /TokenReview POST https:\/\/127.0.0.1:\d+\/apis\/authentication.k8s.io\/v1\/tokenreviews failed/,
    { secret: token },
  )
})

t.test('agents attesting at once share one JWKS fetch', async (t) => {
  const issuer = await startIssuer(t)
  const { ctx } = await attestationContext(t, { config: { clusters: { prod: clusterConfig(issuer) } } })
  const tokens = await Promise.all(Array.from({ length: 8 }, () => issuer.sign(claims())))
  const steps = await Promise.all(tokens.map((token) => attestor.attest({ cluster: 'prod', token }, ctx)))
  t.ok(steps.every((s) => s.done))
  t.equal(issuer.jwksFetches(), 1)
})
