// The agent-facing API: attestation (no credentials: the evidence is the credential), then mTLS with the
// agent's X509-SVID for renewal, SVIDs of the entries it may serve, the push stream of its state (entries,
// bundle, network policy), and the flow reports of its proxy.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { bundlePem, spiffeBundle } from '../../authority/bundle.ts'
import { SigilError } from '../../errors.ts'
import type { FlowRecord } from '../../flows/flow.ts'
import { FLOW_ID_PATTERN } from '../../flows/flow-service.ts'
import { toPolicyJson } from '../../policy/view.ts'
import type { ChangeEvent } from '../../store/store.ts'
import { TrustDomainService } from '../../tenancy/trust-domains.ts'
import { spiffeId } from '../schemas.ts'
import { agentView, entryView } from '../views.ts'

const b64 = { type: 'string', maxLength: 65536 } as const
const selectors = { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 1024 } } as const
const count = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const

/** One FlowRecord (services/flows/flow.ts). `agent` is accepted but set by the server, never taken. */
const flowRecordSchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'id',
    'side',
    'start',
    'durationMs',
    'source',
    'destination',
    'bytesOut',
    'bytesIn',
    'verdict',
    'reason',
    'mode',
    'policyVersion',
  ],
  properties: {
    id: { type: 'string', pattern: FLOW_ID_PATTERN },
    side: { type: 'string', enum: ['egress', 'ingress'] },
    start: { ...count, description: 'ms since the epoch' },
    durationMs: count,
    source: {
      type: 'object',
      additionalProperties: false,
      properties: {
        spiffeId,
        pid: { type: 'integer', minimum: 1, maximum: 2 ** 31 },
        path: { type: 'string', minLength: 1, maxLength: 4096 },
        sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
        selectors,
        agent: { ...spiffeId, description: "ignored: the server sets the reporting agent's own side" },
      },
    },
    destination: {
      type: 'object',
      additionalProperties: false,
      required: ['port'],
      properties: {
        spiffeId,
        fqdn: { type: 'string', minLength: 1, maxLength: 254 },
        service: { type: 'string', minLength: 1, maxLength: 253 },
        port: {
          type: 'integer',
          minimum: 0,
          maximum: 65535,
          description: '0 when not known (refused before the far side named it)',
        },
        selectors,
        agent: { ...spiffeId, description: "ignored: the server sets the reporting agent's own side" },
      },
    },
    bytesOut: count,
    bytesIn: count,
    verdict: { type: 'string', enum: ['allowed', 'denied', 'unidentified'] },
    rule: { type: 'string', minLength: 1, maxLength: 128 },
    reason: { type: 'string', maxLength: 1024 },
    mode: { type: 'string', enum: ['baseline', 'explicit'] },
    policyVersion: count,
  },
} as const
const tags = ['agent API']

function csrOf(value: string): Buffer {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) throw new SigilError('CSR_MALFORMED', 'csr must be base64 DER')
  return Buffer.from(value, 'base64')
}

function chainView(chainDer: Buffer[]) {
  return { certChain: chainDer.map((d) => d.toString('base64')) }
}

export default async function agentApiRoutes(fastify: FastifyInstance): Promise<void> {
  const { agents, trustDomains, authority, store, clock, flows, policies, federation } = fastify.sigil

  fastify.post<{
    Body: {
      trustDomain: string
      attestor?: string
      evidence?: unknown
      session?: string
      answer?: unknown
      csr: string
    }
  }>(
    '/v1/agent/attest',
    {
      config: { auth: { kind: 'none' }, action: 'agent.attest', auditTrustDomainField: 'trustDomain' },
      schema: {
        tags,
        summary:
          'Node attestation: evidence (and, for challenge-response attestors, an answer) for an agent X509-SVID',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['trustDomain', 'csr'],
          properties: {
            trustDomain: { type: 'string', maxLength: 255 },
            attestor: { type: 'string', maxLength: 32 },
            evidence: {},
            session: { type: 'string', maxLength: 65536 },
            answer: {},
            csr: b64,
          },
        },
      },
    },
    async (request, reply) => {
      const body = request.body
      TrustDomainService.validateName(body.trustDomain)
      const td = await trustDomains.get(body.trustDomain)
      const csrDer = csrOf(body.csr)
      const outcome = body.session
        ? await agents.answer(td, body.session, body.answer, csrDer)
        : await agents.attest(td, {
            trustDomain: td.name,
            attestor: body.attestor ?? '',
            evidence: body.evidence,
            csrDer,
          })
      if (!outcome.done)
        return reply.code(202).send({ session: outcome.session, challenge: outcome.challenge })
      request.log.info({ agent: outcome.agent.spiffeId, attestor: outcome.agent.attestor }, 'agent attested')
      const bundle = await authority.bundle(td.name)
      return {
        spiffeId: outcome.agent.spiffeId,
        ...chainView(outcome.chainDer),
        bundlePem: bundlePem(bundle),
      }
    },
  )

  fastify.post<{ Body: { csr: string } }>(
    '/v1/agent/renew',
    {
      config: { auth: { kind: 'agent' }, action: 'agent.renew' },
      schema: {
        tags,
        summary: "Renew the calling agent's X509-SVID (mTLS with the current one)",
        body: { type: 'object', additionalProperties: false, required: ['csr'], properties: { csr: b64 } },
      },
    },
    async (request) => {
      const td = await trustDomains.get(request.agent!.trustDomain)
      const { chainDer } = await agents.renew(td, request.agent!, csrOf(request.body.csr))
      return chainView(chainDer)
    },
  )

  fastify.post<{ Body: { requests: Array<{ entryId: string; csr: string }> } }>(
    '/v1/agent/svids/x509',
    {
      config: { auth: { kind: 'agent' } },
      schema: {
        tags,
        summary: 'X509-SVIDs for entries this agent may serve; each item succeeds or fails on its own',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['requests'],
          properties: {
            requests: {
              type: 'array',
              minItems: 1,
              maxItems: 500,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['entryId', 'csr'],
                properties: { entryId: { type: 'string', maxLength: 128 }, csr: b64 },
              },
            },
          },
        },
      },
    },
    async (request) => {
      const agent = request.agent!
      const td = await trustDomains.get(agent.trustDomain)
      const results = await agents.issueForAgent(
        td,
        agent,
        request.body.requests.map((r) => ({ entryId: r.entryId, csrDer: csrOf(r.csr) })),
      )
      return {
        results: results.map((r) =>
          r.ok
            ? {
                entryId: r.entryId,
                spiffeId: r.spiffeId,
                ...chainView(r.chainDer),
                expiresAt: new Date(r.notAfter).toISOString(),
              }
            : { entryId: r.entryId, error: { code: r.code, message: r.message } },
        ),
      }
    },
  )

  fastify.post<{ Body: { entryId: string; audience: string[] } }>(
    '/v1/agent/svids/jwt',
    {
      config: { auth: { kind: 'agent' } },
      schema: {
        tags,
        summary: 'A JWT-SVID for an entry this agent may serve',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['entryId', 'audience'],
          properties: {
            entryId: { type: 'string', maxLength: 128 },
            audience: {
              type: 'array',
              minItems: 1,
              maxItems: 32,
              items: { type: 'string', minLength: 1, maxLength: 512 },
            },
          },
        },
      },
    },
    async (request) => {
      const agent = request.agent!
      const td = await trustDomains.get(agent.trustDomain)
      const jwt = await agents.issueJwtForAgent(td, agent, request.body)
      return { token: jwt.token, expiresAt: new Date(jwt.expiresAt).toISOString() }
    },
  )

  // Flow reports are data, not admin actions: not audited per call (the records themselves are kept).
  fastify.post<{ Body: { flows: FlowRecord[] } }>(
    '/v1/agent/flows',
    {
      bodyLimit: 4 * 1024 * 1024,
      config: { auth: { kind: 'agent' } },
      schema: {
        tags,
        summary:
          "Report flows the agent's proxy handled; stored in the agent's trust domain. A batch is stored whole or not at all",
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['flows'],
          properties: { flows: { type: 'array', minItems: 1, maxItems: 1000, items: flowRecordSchema } },
        },
      },
    },
    async (request) => {
      const agent = request.agent!
      const td = await trustDomains.get(agent.trustDomain)
      return { accepted: await flows.ingest(td, agent, request.body.flows) }
    },
  )

  // The push stream (server-sent events): the agent's entries and bundle now, and again after every
  // change that concerns its trust domain, so a new or changed entry reaches the agent at once.
  fastify.get(
    '/v1/agent/sync',
    {
      config: { auth: { kind: 'agent' } },
      schema: {
        tags,
        summary:
          "Server-sent events: `state` with the agent's entries, bundle, the federated bundles its entries name, and the network policy, on every change",
      },
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const principal = request.agent!
      const snapshot = async () => {
        const td = await trustDomains.get(principal.trustDomain)
        const agent = await store.getAgent(td.name, principal.spiffeId)
        if (!agent || agent.banned) return undefined
        const [entries, bundle, policy] = await Promise.all([
          agents.authorizedEntries(td, agent),
          authority.bundle(td.name),
          policies.get(td),
        ])
        // Only the foreign bundles this agent's workloads federate with.
        const federatedBundles = await federation.bundlesFor(
          td.name,
          entries.flatMap((e) => e.federatesWith),
        )
        return {
          agent: agentView(agent),
          entries: entries.map(entryView),
          bundle: { pem: bundlePem(bundle), spiffe: spiffeBundle(bundle) },
          federatedBundles,
          // The network policy the agent's proxy enforces (policyFromView rebuilds it).
          policy: { version: policy.version, ...toPolicyJson(policy.policy) },
        }
      }
      reply.hijack()
      const res = reply.raw
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      })
      let last = ''
      let closed = false
      let pending: NodeJS.Timeout | undefined
      const send = async () => {
        pending = undefined
        if (closed) return
        try {
          const state = await snapshot()
          if (!state) {
            res.write('event: revoked\ndata: {"reason":"the agent was banned or evicted"}\n\n')
            res.end()
            return
          }
          const data = JSON.stringify(state)
          if (data === last) return
          last = data
          res.write(`event: state\ndata: ${data}\n\n`)
        } catch (err) {
          request.log.warn({ err }, 'agent sync snapshot failed')
        }
      }
      const unwatch = store.watch((event: ChangeEvent) => {
        if (event.trustDomain !== principal.trustDomain || closed) return
        // Coalesce bursts (a batch of entry changes) into one snapshot.
        pending ??= setTimeout(send, 25)
      })
      // Keep-alive, and a periodic resync as a backstop: Redis pub/sub delivers at most once.
      const heartbeat = setInterval(() => {
        res.write(': keep-alive\n\n')
        pending ??= setTimeout(send, 0)
      }, 15_000)
      const close = () => {
        closed = true
        unwatch()
        clearInterval(heartbeat)
        if (pending) clearTimeout(pending)
      }
      res.on('close', close)
      await store.touchAgent(principal.trustDomain, principal.spiffeId, clock.now())
      await send()
    },
  )
}
