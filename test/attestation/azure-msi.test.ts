import { randomUUID } from 'node:crypto'
import t from 'tap'
import { createAgentNodeAttestor } from '../../agents/attestation/node/registry.ts'
import { createAzureMsiAttestor } from '../../services/attestation/node/azure-msi.ts'
import { refused } from './helpers/assert.ts'
import { attestationContext } from './helpers/context.ts'
import { json, startServer } from './helpers/http-server.ts'
import { startIssuer, type TestIssuer } from './helpers/oidc-issuer.ts'

const attestor = createAzureMsiAttestor()
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47'
const OTHER_TENANT = '0b7c1a9e-4a65-4c2e-9d3c-5f2f2a3d8e11'
const SUBSCRIPTION = '6a1f3c2e-0b9d-4f7a-8c5e-2d1b0a9f8e7d'
const RESOURCE = 'https://management.azure.com/'
const principal = randomUUID()
const vmMirid = `/subscriptions/${SUBSCRIPTION}/resourcegroups/rg-nodes/providers/Microsoft.Compute/virtualMachines/node-1`

/** The claims of a v1 managed identity access token from the Azure IMDS. */
function claims(overrides: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000)
  return {
    aud: RESOURCE,
    iat: now,
    nbf: now,
    exp: now + 86_400,
    aio: 'E2ZgYJg',
    appid: randomUUID(),
    appidacr: '2',
    idp: `https://sts.windows.net/${TENANT}/`,
    idtyp: 'app',
    oid: principal,
    sub: principal,
    tid: TENANT,
    uti: 'Tx1Vn',
    ver: '1.0',
    xms_mirid: vmMirid,
    ...overrides,
  }
}

async function tenantIssuer(t: Parameters<typeof startIssuer>[0], tenant = TENANT): Promise<TestIssuer> {
  return startIssuer(t, { issuerOverride: `https://sts.windows.net/${tenant}/` })
}

t.test('the agent gets a managed identity token from the IMDS; the principal attests once', async (t) => {
  const entra = await tenantIssuer(t)
  const { ctx } = await attestationContext(t, {
    config: { tenants: { [TENANT]: { audience: RESOURCE, jwksUrl: entra.jwksUrl } } },
  })
  const imds = await startServer(t, async (req, res) => {
    const url = new URL(req.url!, 'http://x')
    if (req.headers.metadata !== 'true' || url.pathname !== '/metadata/identity/oauth2/token')
      return json(res, 400, { error: 'invalid_request' })
    const resource = url.searchParams.get('resource')!
    json(res, 200, {
      access_token: await entra.sign(claims({ aud: resource })),
      expires_in: '86399',
      resource,
      token_type: 'Bearer',
    })
  })
  const agent = await createAgentNodeAttestor('azure_msi', { resource: RESOURCE, imdsUrl: imds.url })
  const evidence = await agent.evidence()
  t.match(imds.requests[0]?.url, /api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F/)
  t.same(await attestor.attest(evidence, ctx), {
    done: true,
    result: {
      agentId: `spiffe://example.org/sigil/agent/azure_msi/${TENANT}/${principal}`,
      selectors: [
        { type: 'azure_msi', value: `tenant-id:${TENANT}` },
        { type: 'azure_msi', value: `subscription-id:${SUBSCRIPTION}` },
        { type: 'azure_msi', value: 'resource-group:rg-nodes' },
        { type: 'azure_msi', value: 'vm-name:node-1' },
      ],
      canReattest: false,
    },
  })
  await refused(
    t,
    attestor.attest(evidence, ctx),
    'ATTESTATION_REPLAYED',
    new RegExp(`principal ${principal} of tenant ${TENANT} has already attested`),
    { secret: (evidence as { token: string }).token },
  )
})

t.test('a user-assigned identity names no VM; v2 issuers are accepted; allowReattest', async (t) => {
  const entra = await tenantIssuer(t)
  const { ctx } = await attestationContext(t, {
    config: { tenants: { [TENANT]: { audience: RESOURCE, jwksUrl: entra.jwksUrl } }, allowReattest: true },
  })
  const mirid = `/subscriptions/${SUBSCRIPTION}/resourcegroups/rg-ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nodes`
  for (const iss of [
    `https://sts.windows.net/${TENANT}/`,
    `https://login.microsoftonline.com/${TENANT}/v2.0`,
  ]) {
    const step = await attestor.attest(
      { token: await entra.sign(claims({ xms_mirid: mirid }), { iss }) },
      ctx,
    )
    if (!step.done) throw new Error('one round')
    t.same(
      step.result.selectors.map((s) => s.value),
      [`tenant-id:${TENANT}`, `subscription-id:${SUBSCRIPTION}`, 'resource-group:rg-ids'],
    )
    t.equal(step.result.canReattest, true)
  }
})

t.test('tokens that must not attest', async (t) => {
  const entra = await tenantIssuer(t)
  const other = await tenantIssuer(t, OTHER_TENANT)
  const { ctx } = await attestationContext(t, {
    config: {
      tenants: {
        [TENANT]: { audience: RESOURCE, jwksUrl: entra.jwksUrl },
        [OTHER_TENANT]: { audience: 'api://sigil', jwksUrl: other.jwksUrl },
      },
    },
  })
  const cases: [string, () => Promise<string>, RegExp][] = [
    [
      'a tenant not configured',
      () => entra.sign(claims({ tid: randomUUID() })),
      /token's tenant "[0-9a-f-]+" is not configured for trust domain "example.org"/,
    ],
    [
      'another audience',
      () => entra.sign(claims({ aud: 'https://vault.azure.net' })),
      /token audience "https:\/\/vault.azure.net" is not the configured "https:\/\/management.azure.com\/"/,
    ],
    [
      'an expired token',
      () => entra.sign(claims({ exp: Math.floor(Date.now() / 1000) - 300 })),
      /token expired/,
    ],
    [
      "another tenant's issuer",
      () => entra.sign(claims(), { iss: `https://sts.windows.net/${OTHER_TENANT}/` }),
      /token issuer .* is not the configured/,
    ],
    ["signed by another tenant's keys", () => other.sign(claims()), /signature does not verify/],
    [
      'a forged signature',
      async () => entra.sign(claims(), { key: await entra.foreignKey() }),
      /signature does not verify/,
    ],
    [
      'no xms_mirid (not a managed identity)',
      () => entra.sign(claims({ xms_mirid: undefined })),
      /has no usable xms_mirid/,
    ],
    [
      'a malformed xms_mirid',
      () => entra.sign(claims({ xms_mirid: '/subscriptions/x/../../' })),
      /has no usable xms_mirid/,
    ],
    ['no object id', () => entra.sign(claims({ oid: undefined, sub: 'not-a-guid' })), /names no principal/],
  ]
  for (const [what, make, message] of cases) {
    const token = await make()
    await refused(t, attestor.attest({ token }, ctx), 'ATTESTATION_FAILED', message, { what, secret: token })
  }
})

t.test('garbage evidence and configuration are refused', async (t) => {
  const { ctx } = await attestationContext(t, { config: { tenants: { [TENANT]: { audience: RESOURCE } } } })
  for (const evidence of [
    null,
    7,
    { token: null },
    { token: 'abc' },
    { token: 'a.b.c.d' },
    { token: 'x'.repeat(40_000) },
    { token: 'a.b.c', tid: TENANT },
  ]) {
    await refused(t, attestor.attest(evidence, ctx), 'ATTESTATION_EVIDENCE_INVALID', /^azure_msi evidence/, {
      what: JSON.stringify(evidence).slice(0, 40),
    })
  }
  await refused(
    t,
    attestor.attest({ token: 'a.b.c' }, ctx),
    'ATTESTATION_FAILED',
    /token's tenant "\(none\)" is not configured/,
  )
  t.throws(() => attestor.validateConfig({ tenants: { contoso: { audience: RESOURCE } } }), {
    code: 'ATTESTATION_CONFIG_INVALID',
    message: /tenants has a key "contoso" that must match pattern/,
  })
  t.throws(() => attestor.validateConfig({ tenants: { [TENANT]: {} } }), {
    message: /must have required property 'audience'/,
  })
  await t.rejects(createAgentNodeAttestor('azure_msi', { resource: RESOURCE, clientId: 'nope' }), {
    name: 'TypeError',
    message: /clientId must be a GUID/,
  })
  const down = await createAgentNodeAttestor('azure_msi', {
    resource: RESOURCE,
    imdsUrl: 'http://127.0.0.1:9',
    timeoutMs: 1000,
  })
  await t.rejects(down.evidence(), {
    code: 'ATTESTATION_EVIDENCE_UNAVAILABLE',
    message: /GET http:\/\/127.0.0.1:9\/metadata\/identity\/oauth2\/token\?api-version=2018-02-01/,
  })
})
