import t from 'tap'
import { createAgentNodeAttestor } from '../../agents/attestation/node/registry.ts'
import { createGcpIitAttestor } from '../../services/attestation/node/gcp-iit.ts'
import { refused } from './helpers/assert.ts'
import { attestationContext } from './helpers/context.ts'
import { startServer } from './helpers/http-server.ts'
import { startIssuer } from './helpers/oidc-issuer.ts'

const attestor = createGcpIitAttestor()
const GOOGLE = 'https://accounts.google.com'
const AUDIENCE = 'spiffe://example.org/sigil/gcp'

/** The claims of a GCE instance identity token in the full format. */
function claims(overrides: Record<string, unknown> = {}, ce: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000)
  return {
    aud: AUDIENCE,
    azp: '112233445566778899000',
    email: '123456789-compute@developer.gserviceaccount.com',
    email_verified: true,
    exp: now + 3600,
    iat: now,
    sub: '112233445566778899000',
    google: {
      compute_engine: {
        instance_creation_timestamp: now - 600,
        instance_id: '4432158725637272541',
        instance_name: 'node-1',
        project_id: 'sigil-prod-123',
        project_number: 123456789,
        zone: 'us-central1-a',
        ...ce,
      },
    },
    ...overrides,
  }
}

async function setup(t: Parameters<typeof startIssuer>[0], extra: Record<string, unknown> = {}) {
  const google = await startIssuer(t, { issuerOverride: GOOGLE })
  const config = {
    audience: AUDIENCE,
    jwksUrl: google.jwksUrl,
    projectIdAllowList: ['sigil-prod-123'],
    ...extra,
  }
  return { google, ...(await attestationContext(t, { config })) }
}

t.test(
  'the agent gets a full-format token from the metadata server; the instance attests once',
  async (t) => {
    const { google, ctx } = await setup(t)
    const metadata = await startServer(t, async (req, res) => {
      const url = new URL(req.url!, 'http://x')
      if (req.headers['metadata-flavor'] !== 'Google') {
        res.statusCode = 403
        return res.end()
      }
      if (
        url.pathname !== '/computeMetadata/v1/instance/service-accounts/default/identity' ||
        url.searchParams.get('format') !== 'full'
      ) {
        res.statusCode = 404
        return res.end()
      }
      res.end(await google.sign(claims({ aud: url.searchParams.get('audience') })))
    })
    const agent = await createAgentNodeAttestor('gcp_iit', { audience: AUDIENCE, metadataUrl: metadata.url })
    const evidence = await agent.evidence()
    t.same(await attestor.attest(evidence, ctx), {
      done: true,
      result: {
        agentId: 'spiffe://example.org/sigil/agent/gcp_iit/sigil-prod-123/4432158725637272541',
        selectors: [
          { type: 'gcp_iit', value: 'project-id:sigil-prod-123' },
          { type: 'gcp_iit', value: 'zone:us-central1-a' },
          { type: 'gcp_iit', value: 'instance-name:node-1' },
          { type: 'gcp_iit', value: 'sa:123456789-compute@developer.gserviceaccount.com' },
        ],
        canReattest: false,
      },
    })
    const fresh = await agent.evidence()
    await refused(
      t,
      attestor.attest(fresh, ctx),
      'ATTESTATION_REPLAYED',
      /instance 4432158725637272541 \(node-1\) of project sigil-prod-123 has already attested.*allowReattest/,
      { secret: (fresh as { token: string }).token },
    )
  },
)

t.test('allowReattest lets an instance attest again', async (t) => {
  const { google, ctx } = await setup(t, { allowReattest: true })
  for (let i = 0; i < 2; i++) {
    const step = await attestor.attest({ token: await google.sign(claims()) }, ctx)
    t.equal(step.done && step.result.canReattest, true)
  }
})

t.test('tokens that must not attest', async (t) => {
  const { google, ctx } = await setup(t)
  const cases: [string, () => Promise<string>, RegExp][] = [
    [
      'another project',
      () => google.sign(claims({}, { project_id: 'someone-else' })),
      /project "someone-else" is not in projectIdAllowList/,
    ],
    [
      'another audience',
      () => google.sign(claims({ aud: 'https://vault.example' })),
      /token audience "https:\/\/vault.example" is not the configured/,
    ],
    [
      'an expired token',
      () => google.sign(claims({ exp: Math.floor(Date.now() / 1000) - 600 })),
      /token expired 6\d\ds ago/,
    ],
    [
      'a token not from Google',
      () => google.sign(claims(), { iss: 'https://issuer.example' }),
      /token issuer "https:\/\/issuer.example" is not the configured "https:\/\/accounts.google.com", "accounts.google.com"/,
    ],
    [
      'a forged signature',
      async () => google.sign(claims(), { key: await google.foreignKey() }),
      /signature does not verify/,
    ],
    [
      'the standard format (no instance claims)',
      () => google.sign(claims({ google: undefined })),
      /no complete google.compute_engine claims .* format=full/,
    ],
    [
      'an ES256 token',
      async () => google.sign(claims(), { key: await google.foreignKey('ES256'), alg: 'ES256' }),
      /algorithm is not allowed/,
    ],
  ]
  for (const [what, make, message] of cases) {
    const token = await make()
    await refused(t, attestor.attest({ token }, ctx), 'ATTESTATION_FAILED', message, { what, secret: token })
  }
})

t.test('a domain-scoped project cannot name an agent', async (t) => {
  const { google, ctx } = await setup(t, { projectIdAllowList: undefined, allowAnyProject: true })
  const token = await google.sign(claims({}, { project_id: 'example.com:legacy' }))
  await refused(
    t,
    attestor.attest({ token }, ctx),
    'ATTESTATION_FAILED',
    /"example.com:legacy" cannot be part of an agent SPIFFE ID/,
  )
})

t.test('garbage evidence and configuration are refused', async (t) => {
  const { ctx } = await setup(t)
  for (const evidence of [
    null,
    'jwt',
    { token: 1 },
    { token: 'x' },
    { token: 'a.b' },
    { token: 'a'.repeat(17_000) },
    { token: 'a.b.c', zone: 'z' },
  ]) {
    await refused(t, attestor.attest(evidence, ctx), 'ATTESTATION_EVIDENCE_INVALID', /^gcp_iit evidence/, {
      what: JSON.stringify(evidence).slice(0, 40),
    })
  }
  t.throws(() => attestor.validateConfig({ audience: AUDIENCE }), {
    code: 'ATTESTATION_CONFIG_INVALID',
    message: /projectIdAllowList .* allowAnyProject: true/,
  })
  t.throws(() => attestor.validateConfig({ audience: AUDIENCE, projectIdAllowList: ['Bad_Project'] }), {
    message: /projectIdAllowList.0 must match pattern/,
  })
  t.throws(() => attestor.validateConfig({ projectIdAllowList: ['sigil-prod-123'] }), {
    message: /must have required property 'audience'/,
  })
  const down = await createAgentNodeAttestor('gcp_iit', {
    audience: AUDIENCE,
    metadataUrl: 'http://127.0.0.1:9',
    timeoutMs: 1000,
  })
  await t.rejects(down.evidence(), {
    code: 'ATTESTATION_EVIDENCE_UNAVAILABLE',
    message:
      /GET http:\/\/127.0.0.1:9\/computeMetadata\/v1\/instance\/service-accounts\/default\/identity\?audience=.* failed/,
  })
})
