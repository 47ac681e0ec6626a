import { useEffect } from 'react'
import { type Agent, type Entry, type FlowView, tdPath } from '../api.ts'
import { ErrorAlert } from '../components/Alert.tsx'
import { BarChart } from '../components/BarChart.tsx'
import { formatTime, relative } from '../format.ts'
import { useApi } from '../hooks.ts'
import { href } from '../router.ts'

/** An agent counts as connected when the server heard from it this recently. */
const CONNECTED_MS = 5 * 60_000

export function OverviewPage({ td }: { td: string }) {
  const agents = useApi<{ agents: Agent[] }>(tdPath(td, '/agents'))
  const entries = useApi<{ entries: Entry[] }>(tdPath(td, '/entries'))
  const issued = useApi<{ hours: Array<{ start: string; count: number }> }>(
    tdPath(td, '/svids/issued?hours=24'),
  )
  const authority = useApi<{ nextRotation: string | null }>(tdPath(td, '/authority'))
  const denied = useApi<{ flows: FlowView[] }>(tdPath(td, '/flows?verdict=denied&since=3600&limit=5000'))
  const all = [agents, entries, issued, authority, denied]
  const ready = all.every((x) => x.data !== undefined || x.error !== undefined)

  useEffect(() => {
    if (ready) performance.mark('sigil:overview-ready')
  }, [ready])

  const now = Date.now()
  const agentList = agents.data?.agents ?? []
  const connected = agentList.filter((a) => !a.banned && now - Date.parse(a.lastSeenAt) < CONNECTED_MS).length
  const deniedFlows = new Set((denied.data?.flows ?? []).map((f) => f.id)).size
  const error = all.find((x) => x.error)?.error

  return (
    <section aria-labelledby="overview-heading" data-ready={ready ? 'true' : 'false'}>
      <h1 id="overview-heading">Overview of {td}</h1>
      <ErrorAlert error={error} />
      <div className="cards">
        <Card
          title="Agents connected"
          value={agents.data ? `${connected} of ${agentList.length}` : '…'}
          link={href({ page: 'agents', td })}
          linkText="All agents"
        />
        <Card
          title="Workloads"
          value={entries.data ? String(entries.data.entries.length) : '…'}
          link={href({ page: 'entries', td })}
          linkText="Registration entries"
        />
        <Card
          title="Next CA rotation"
          value={
            authority.data
              ? authority.data.nextRotation
                ? relative(authority.data.nextRotation)
                : 'none scheduled'
              : '…'
          }
          detail={authority.data?.nextRotation ? formatTime(authority.data.nextRotation) : undefined}
        />
        <Card
          title="Denied flows, last hour"
          value={denied.data ? `${deniedFlows}${denied.data.flows.length >= 5000 ? '+' : ''}` : '…'}
          link={href({ page: 'graph', td })}
          linkText="Network graph"
          tone={deniedFlows > 0 ? 'bad' : undefined}
        />
      </div>
      <section aria-labelledby="issued-heading" className="panel">
        <h2 id="issued-heading">SVIDs issued per hour</h2>
        {issued.data ? (
          <BarChart
            title={`SVIDs issued per hour in ${td}, last 24 hours`}
            unit="SVIDs"
            bars={issued.data.hours.map((h) => ({
              label: new Date(h.start).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }),
              value: h.count,
            }))}
          />
        ) : (
          <p className="muted">…</p>
        )}
      </section>
    </section>
  )
}

function Card({
  title,
  value,
  detail,
  link,
  linkText,
  tone,
}: {
  title: string
  value: string
  detail?: string | undefined
  link?: string
  linkText?: string
  tone?: 'bad' | undefined
}) {
  return (
    <section className={`card${tone ? ` ${tone}` : ''}`} aria-label={title}>
      <h2>{title}</h2>
      <p className="value">{value}</p>
      {detail && <p className="muted">{detail}</p>}
      {link && <a href={link}>{linkText}</a>}
    </section>
  )
}
