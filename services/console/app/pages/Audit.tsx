import { useState } from 'react'
import { type AuditEvent, tdPath } from '../api.ts'
import { ErrorAlert, Loading } from '../components/Alert.tsx'
import { formatTime } from '../format.ts'
import { useApi } from '../hooks.ts'

const PAGE = 100

export function AuditPage({ td }: { td: string }) {
  const [before, setBefore] = useState<number[]>([])
  const cursor = before[before.length - 1]
  const events = useApi<{ events: AuditEvent[] }>(
    tdPath(td, `/audit?limit=${PAGE}${cursor ? `&before=${cursor}` : ''}`),
  )
  const list = events.data?.events ?? []
  return (
    <section aria-labelledby="audit-heading">
      <h1 id="audit-heading">Audit log of {td}</h1>
      <ErrorAlert error={events.error} />
      {!events.data && !events.error && <Loading what="the audit log" />}
      {events.data && (
        <table>
          <caption>Who did what, when, with what result (newest first)</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Result</th>
            </tr>
          </thead>
          <tbody>
            {list.map((e) => (
              <tr key={e.seq}>
                <td>{formatTime(e.at)}</td>
                <td className="mono">{e.actor}</td>
                <th scope="row">{e.action}</th>
                <td className="mono">{e.target}</td>
                <td>
                  <span className={`badge ${e.result === 'ok' ? 'ok' : 'bad'}`}>
                    {e.result} {e.status}
                  </span>
                  {e.code && <span className="mono"> {e.code}</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div className="actions left">
        <button type="button" disabled={before.length === 0} onClick={() => setBefore(before.slice(0, -1))}>
          Newer events
        </button>
        <button
          type="button"
          disabled={list.length < PAGE}
          onClick={() => setBefore([...before, list[list.length - 1]!.seq])}
        >
          Older events
        </button>
      </div>
    </section>
  )
}
