import { type FormEvent, useMemo, useState } from 'react'
import { type Agent, type ApiError, type Entry, request, tdPath } from '../api.ts'
import { ErrorAlert, Loading, Notice } from '../components/Alert.tsx'
import { ConfirmDialog, Dialog } from '../components/Dialog.tsx'
import { Field } from '../components/Field.tsx'
import { formatDuration, parseDuration } from '../format.ts'
import { useAction, useApi } from '../hooks.ts'
import { SelectorBuilder } from './SelectorBuilder.tsx'

export function EntriesPage({ td }: { td: string }) {
  const entries = useApi<{ entries: Entry[] }>(tdPath(td, '/entries'))
  const agents = useApi<{ agents: Agent[] }>(tdPath(td, '/agents'))
  const [search, setSearch] = useState('')
  const [editing, setEditing] = useState<Entry | 'new'>()
  const [deleting, setDeleting] = useState<Entry>()
  const [done, setDone] = useState<string>()
  const remove = useAction((id: string) =>
    request('DELETE', tdPath(td, `/entries/${encodeURIComponent(id)}`)).then(() => true),
  )

  const shown = useMemo(() => {
    const all = entries.data?.entries ?? []
    const q = search.trim().toLowerCase()
    if (!q) return all
    return all.filter((e) =>
      [e.spiffeId, e.parentId, ...e.selectors, ...e.dnsNames].some((x) => x.toLowerCase().includes(q)),
    )
  }, [entries.data, search])

  return (
    <section aria-labelledby="entries-heading">
      <h1 id="entries-heading">Registration entries of {td}</h1>
      <ErrorAlert error={entries.error} />
      {done && <Notice>{done}</Notice>}
      <div className="toolbar">
        <label className="search">
          <span>Search entries</span>
          <input
            type="search"
            value={search}
            onChange={(e) => setSearch(e.target.value)}
            placeholder="SPIFFE ID, parent, selector…"
          />
        </label>
        <button type="button" className="primary" onClick={() => setEditing('new')}>
          Create entry
        </button>
      </div>
      {!entries.data && !entries.error && <Loading what="entries" />}
      {entries.data && (
        <table>
          <caption>
            {shown.length} of {entries.data.entries.length} entries
          </caption>
          <thead>
            <tr>
              <th scope="col">SPIFFE ID</th>
              <th scope="col">Parent</th>
              <th scope="col">Selectors</th>
              <th scope="col">TTL (X509 / JWT)</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((e) => (
              <tr key={e.id}>
                <th scope="row" className="mono">
                  {e.spiffeId}
                  {e.admin && <span className="badge">admin</span>}
                  {e.downstream && <span className="badge">downstream</span>}
                </th>
                <td className="mono">{e.parentId}</td>
                <td>
                  <ul className="selectors">
                    {e.selectors.map((s) => (
                      <li key={s} className="mono">
                        {s}
                      </li>
                    ))}
                  </ul>
                </td>
                <td>
                  {e.x509Ttl ? formatDuration(e.x509Ttl) : 'default'} /{' '}
                  {e.jwtTtl ? formatDuration(e.jwtTtl) : 'default'}
                </td>
                <td className="row-actions">
                  <button type="button" aria-label={`Edit entry ${e.spiffeId}`} onClick={() => setEditing(e)}>
                    Edit
                  </button>
                  <button
                    type="button"
                    className="danger"
                    aria-label={`Delete entry ${e.spiffeId}`}
                    onClick={() => setDeleting(e)}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {editing && (
        <EntryForm
          td={td}
          entry={editing === 'new' ? undefined : editing}
          agents={agents.data?.agents ?? []}
          onClose={() => setEditing(undefined)}
          onSaved={(e, created) => {
            setEditing(undefined)
            setDone(`${created ? 'Created' : 'Saved'} entry ${e.spiffeId}.`)
            entries.reload()
          }}
        />
      )}
      {deleting && (
        <ConfirmDialog
          title="Delete this registration entry?"
          confirmLabel="Delete entry"
          pending={remove.pending}
          onClose={() => {
            setDeleting(undefined)
            remove.setError(undefined)
          }}
          onConfirm={() =>
            void remove.run(deleting.id).then((ok) => {
              if (!ok) return
              setDone(`Deleted entry ${deleting.spiffeId}.`)
              setDeleting(undefined)
              entries.reload()
            })
          }
        >
          <p>
            Workloads matching it stop getting SVIDs for <span className="mono">{deleting.spiffeId}</span>
            {'; the SVIDs they hold stay valid until they expire.'}
          </p>
          <ErrorAlert error={remove.error} />
        </ConfirmDialog>
      )}
    </section>
  )
}

type FieldName = 'spiffeId' | 'parentId' | 'selectors' | 'x509Ttl' | 'jwtTtl' | 'dnsNames'
type Errors = Partial<Record<FieldName, string>>

interface FormValues {
  spiffeId: string
  parentId: string
  selectors: string[]
  x509Ttl: string
  jwtTtl: string
  dnsNames: string
  admin: boolean
  downstream: boolean
}

const DNS = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i

function check(td: string, v: FormValues): { errors: Errors; body?: Record<string, unknown> } {
  const errors: Errors = {}
  const prefix = `spiffe://${td}/`
  if (!v.spiffeId.startsWith(prefix) || v.spiffeId.length === prefix.length || /\s/.test(v.spiffeId))
    errors.spiffeId = `A SPIFFE ID of this trust domain with a path, e.g. ${prefix}web`
  if (!v.parentId.startsWith(`spiffe://${td}`) || /\s/.test(v.parentId))
    errors.parentId = `An agent's SPIFFE ID (${prefix}sigil/agent/...), the server (${prefix}sigil/server) or another entry's ID`
  else if (v.parentId === v.spiffeId) errors.parentId = 'The parent must differ from the SPIFFE ID'
  if (v.selectors.length === 0) errors.selectors = 'Add at least one selector'
  const x509 = v.x509Ttl.trim() ? parseDuration(v.x509Ttl) : 0
  const jwt = v.jwtTtl.trim() ? parseDuration(v.jwtTtl) : 0
  if (x509 === undefined) errors.x509Ttl = 'A duration such as 30m or 1h, or empty for the default'
  if (jwt === undefined) errors.jwtTtl = 'A duration such as 5m, or empty for the default'
  const dnsNames = v.dnsNames
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean)
  const badDns = dnsNames.find((d) => !DNS.test(d))
  if (badDns) errors.dnsNames = `${badDns} is not a DNS name`
  if (Object.keys(errors).length) return { errors }
  const body: Record<string, unknown> = {
    spiffeId: v.spiffeId,
    parentId: v.parentId,
    selectors: v.selectors,
    dnsNames,
    admin: v.admin,
    downstream: v.downstream,
  }
  if (x509) body.x509Ttl = x509
  if (jwt) body.jwtTtl = jwt
  return { errors, body }
}

/** Which field a refusal of the API is about: its message names the field first. */
function fieldOf(e: ApiError): FieldName | undefined {
  if (e.code === 'SELECTOR_INVALID') return 'selectors'
  if (e.code === 'DNS_NAME_INVALID') return 'dnsNames'
  if (e.code === 'ENTRY_PARENT_NOT_FOUND') return 'parentId'
  for (const f of ['spiffeId', 'parentId', 'x509Ttl', 'jwtTtl', 'dnsNames', 'selectors'] as const) {
    if (e.message.startsWith(f) || e.message.startsWith(`body field ${f}`)) return f
  }
  return undefined
}

function EntryForm({
  td,
  entry,
  agents,
  onClose,
  onSaved,
}: {
  td: string
  entry: Entry | undefined
  agents: Agent[]
  onClose(): void
  onSaved(e: Entry, created: boolean): void
}) {
  const [v, setV] = useState<FormValues>(() => ({
    spiffeId: entry?.spiffeId ?? `spiffe://${td}/`,
    parentId: entry?.parentId ?? agents[0]?.spiffeId ?? `spiffe://${td}/sigil/server`,
    selectors: entry?.selectors ?? [],
    x509Ttl: entry?.x509Ttl ? formatDuration(entry.x509Ttl) : '',
    jwtTtl: entry?.jwtTtl ? formatDuration(entry.jwtTtl) : '',
    dnsNames: entry?.dnsNames.join(', ') ?? '',
    admin: entry?.admin ?? false,
    downstream: entry?.downstream ?? false,
  }))
  const [errors, setErrors] = useState<Errors>({})
  const [submitted, setSubmitted] = useState(false)
  const save = useAction((body: Record<string, unknown>) =>
    entry
      ? request<Entry>('PATCH', tdPath(td, `/entries/${encodeURIComponent(entry.id)}`), body)
      : request<Entry>('POST', tdPath(td, '/entries'), body),
  )
  const serverField = save.error ? fieldOf(save.error) : undefined
  const set = (patch: Partial<FormValues>) => {
    const next = { ...v, ...patch }
    setV(next)
    if (submitted) setErrors(check(td, next).errors)
  }
  const errorOf = (f: FieldName) => errors[f] ?? (serverField === f ? save.error?.message : undefined)

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    setSubmitted(true)
    const checked = check(td, v)
    setErrors(checked.errors)
    if (!checked.body) return
    const saved = await save.run(checked.body)
    if (saved) onSaved(saved, !entry)
  }

  const listId = `parents-${td}`
  return (
    <Dialog
      title={entry ? `Edit entry ${entry.spiffeId}` : 'Create a registration entry'}
      onClose={onClose}
      wide
    >
      <form onSubmit={(e) => void submit(e)} noValidate>
        <Field
          label="SPIFFE ID"
          className="mono"
          value={v.spiffeId}
          onChange={(e) => set({ spiffeId: e.target.value })}
          error={errorOf('spiffeId')}
          spellCheck={false}
        />
        <Field
          label="Parent ID"
          className="mono"
          list={listId}
          value={v.parentId}
          onChange={(e) => set({ parentId: e.target.value })}
          error={errorOf('parentId')}
          hint="The agent that may serve this identity, or the server for a node alias entry."
          spellCheck={false}
        >
          <datalist id={listId}>
            <option value={`spiffe://${td}/sigil/server`}>the server (node alias)</option>
            {agents.map((a) => (
              <option key={a.spiffeId} value={a.spiffeId} />
            ))}
          </datalist>
        </Field>
        <SelectorBuilder
          selectors={v.selectors}
          onChange={(selectors) => set({ selectors })}
          error={errorOf('selectors')}
        />
        <div className="two">
          <Field
            label="X509-SVID TTL"
            value={v.x509Ttl}
            onChange={(e) => set({ x509Ttl: e.target.value })}
            error={errorOf('x509Ttl')}
            placeholder="default"
          />
          <Field
            label="JWT-SVID TTL"
            value={v.jwtTtl}
            onChange={(e) => set({ jwtTtl: e.target.value })}
            error={errorOf('jwtTtl')}
            placeholder="default"
          />
        </div>
        <Field
          label="DNS names"
          value={v.dnsNames}
          onChange={(e) => set({ dnsNames: e.target.value })}
          error={errorOf('dnsNames')}
          hint="Comma-separated, for X509-SVIDs"
          spellCheck={false}
        />
        <label className="check">
          <input type="checkbox" checked={v.admin} onChange={(e) => set({ admin: e.target.checked })} /> Admin
          (may use the admin API with its SVID)
        </label>
        <label className="check">
          <input
            type="checkbox"
            checked={v.downstream}
            onChange={(e) => set({ downstream: e.target.checked })}
          />{' '}
          Downstream (may sign SVIDs)
        </label>
        {Object.keys(errors).length > 0 && (
          <div className="alert error" role="alert">
            Check the fields marked above: {Object.keys(errors).join(', ')}.
          </div>
        )}
        <ErrorAlert error={save.error && !serverField ? save.error : undefined} />
        {save.error && serverField && (
          <div className="alert error" role="alert">
            The server refused the entry: {save.error.message}
          </div>
        )}
        <div className="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={save.pending}>
            {entry ? 'Save entry' : 'Create entry'}
          </button>
        </div>
      </form>
    </Dialog>
  )
}
