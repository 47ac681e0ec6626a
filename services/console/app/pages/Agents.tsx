import { useEffect, useState } from 'react'
import { type Agent, request, tdPath } from '../api.ts'
import { ErrorAlert, Loading, Notice } from '../components/Alert.tsx'
import { ConfirmDialog } from '../components/Dialog.tsx'
import { formatTime, relative } from '../format.ts'
import { useAction, useApi } from '../hooks.ts'

/** Agents appear as they attest: the list refreshes itself. */
const REFRESH_MS = 3000

export function AgentsPage({ td }: { td: string }) {
  const agents = useApi<{ agents: Agent[] }>(tdPath(td, '/agents'))
  const [confirm, setConfirm] = useState<{ kind: 'ban' | 'evict'; agent: Agent }>()
  const [done, setDone] = useState<string>()
  const act = useAction(async (kind: 'ban' | 'evict', id: string) => {
    const path = tdPath(td, `/agents/${encodeURIComponent(id)}`)
    if (kind === 'ban') await request('POST', `${path}/ban`)
    else await request('DELETE', path)
    return true
  })
  const { reload } = agents
  useEffect(() => {
    const timer = setInterval(reload, REFRESH_MS)
    return () => clearInterval(timer)
  }, [reload])

  return (
    <section aria-labelledby="agents-heading">
      <h1 id="agents-heading">Agents of {td}</h1>
      <ErrorAlert error={agents.error ?? (confirm ? undefined : act.error)} />
      {done && <Notice>{done}</Notice>}
      {!agents.data && !agents.error && <Loading what="agents" />}
      {agents.data && agents.data.agents.length === 0 && (
        <p>No agent has attested yet. Create a join token and start an agent with it.</p>
      )}
      {agents.data && agents.data.agents.length > 0 && (
        <table>
          <caption>Attested agents ({agents.data.agents.length})</caption>
          <thead>
            <tr>
              <th scope="col">SPIFFE ID</th>
              <th scope="col">Attestor</th>
              <th scope="col">Node selectors</th>
              <th scope="col">Last seen</th>
              <th scope="col">SVID expires</th>
              <th scope="col">Status</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {agents.data.agents.map((a) => (
              <tr key={a.spiffeId}>
                <th scope="row" className="mono">
                  {a.spiffeId}
                </th>
                <td>{a.attestor}</td>
                <td>
                  <ul className="selectors">
                    {a.selectors.map((s) => (
                      <li key={s} className="mono">
                        {s}
                      </li>
                    ))}
                  </ul>
                </td>
                <td title={formatTime(a.lastSeenAt)}>{relative(a.lastSeenAt)}</td>
                <td title={formatTime(a.svidExpiresAt)}>{relative(a.svidExpiresAt)}</td>
                <td>
                  {a.banned ? (
                    <span className="badge bad">banned</span>
                  ) : (
                    <span className="badge ok">active</span>
                  )}
                </td>
                <td className="row-actions">
                  <button
                    type="button"
                    aria-label={`Ban agent ${a.spiffeId}`}
                    disabled={a.banned}
                    onClick={() => setConfirm({ kind: 'ban', agent: a })}
                  >
                    Ban
                  </button>
                  <button
                    type="button"
                    className="danger"
                    aria-label={`Evict agent ${a.spiffeId}`}
                    onClick={() => setConfirm({ kind: 'evict', agent: a })}
                  >
                    Evict
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {confirm && (
        <ConfirmDialog
          title={confirm.kind === 'ban' ? 'Ban this agent?' : 'Evict this agent?'}
          confirmLabel={confirm.kind === 'ban' ? 'Ban agent' : 'Evict agent'}
          pending={act.pending}
          onClose={() => {
            setConfirm(undefined)
            act.setError(undefined)
          }}
          onConfirm={() =>
            void act.run(confirm.kind, confirm.agent.spiffeId).then((ok) => {
              if (!ok) return
              setDone(`${confirm.kind === 'ban' ? 'Banned' : 'Evicted'} ${confirm.agent.spiffeId}.`)
              setConfirm(undefined)
              reload()
            })
          }
        >
          <p className="mono">{confirm.agent.spiffeId}</p>
          {confirm.kind === 'ban' ? (
            <p>
              A banned agent cannot renew its SVID or attest again; its workloads lose their identities when
              their SVIDs expire. Evict it later to let it attest again.
            </p>
          ) : (
            <p>
              Its record is deleted. It cannot renew; it may attest again with new evidence (a join token is
              single use).
            </p>
          )}
          <ErrorAlert error={act.error} />
        </ConfirmDialog>
      )}
    </section>
  )
}
