import { type FormEvent, useState } from 'react'
import {
  type Agent,
  type ApiError,
  type Entry,
  get,
  type JoinToken,
  type PolicyView,
  request,
  type TrustDomain,
  type TrustDomainSettings,
  tdPath,
} from '../api.ts'
import { ErrorAlert, Loading, Notice } from '../components/Alert.tsx'
import { ConfirmDialog } from '../components/Dialog.tsx'
import { Field } from '../components/Field.tsx'
import { formatDuration, formatTime, parseDuration } from '../format.ts'
import { useAction, useApi } from '../hooks.ts'
import { href, navigate } from '../router.ts'

const NAME = /^[a-z0-9._-]+$/

export function nameProblem(name: string): string | undefined {
  if (!name) return 'Enter a name, e.g. example.org.'
  if (name.length > 255) return 'At most 255 characters.'
  if (!NAME.test(name))
    return 'Use lowercase letters, digits, dots, dashes and underscores only (like example.org).'
  return undefined
}

interface Impact {
  entries: number
  agents: number
  tokens: number
  policyVersion: number
}

export function TrustDomainsPage({ onChanged }: { onChanged(): void }) {
  const list = useApi<{ trustDomains: TrustDomain[] }>('/v1/trust-domains')
  const [name, setName] = useState('')
  const [nameError, setNameError] = useState<string>()
  const [created, setCreated] = useState<string>()
  const create = useAction((n: string) => request<TrustDomain>('POST', '/v1/trust-domains', { name: n }))
  const [deleting, setDeleting] = useState<{ name: string; impact?: Impact; error?: ApiError }>()
  const [typed, setTyped] = useState('')
  const remove = useAction((n: string) => request<void>('DELETE', tdPath(n)).then(() => true))

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    const problem = nameProblem(name)
    setNameError(problem)
    if (problem) return
    const td = await create.run(name)
    if (td) {
      setCreated(td.name)
      setName('')
      list.reload()
      onChanged()
    }
  }
  const serverNameError =
    create.error &&
    ['TRUST_DOMAIN_INVALID', 'TRUST_DOMAIN_EXISTS', 'VALIDATION_FAILED'].includes(create.error.code)
      ? create.error.message
      : undefined

  const askDelete = async (n: string) => {
    setTyped('')
    setDeleting({ name: n })
    try {
      const [entries, agents, tokens, policy] = await Promise.all([
        get<{ entries: Entry[] }>(tdPath(n, '/entries')),
        get<{ agents: Agent[] }>(tdPath(n, '/agents')),
        get<{ joinTokens: JoinToken[] }>(tdPath(n, '/join-tokens')),
        get<PolicyView>(tdPath(n, '/policy')),
      ])
      setDeleting({
        name: n,
        impact: {
          entries: entries.entries.length,
          agents: agents.agents.length,
          tokens: tokens.joinTokens.length,
          policyVersion: policy.version,
        },
      })
    } catch (err) {
      setDeleting({ name: n, error: err as ApiError })
    }
  }

  return (
    <section aria-labelledby="tds-heading">
      <h1 id="tds-heading">Trust domains</h1>
      <ErrorAlert error={list.error ?? remove.error} />
      {list.loading && !list.data && <Loading what="trust domains" />}
      {list.data && list.data.trustDomains.length === 0 && (
        <p>No trust domains yet. Create the first one below.</p>
      )}
      {list.data && list.data.trustDomains.length > 0 && (
        <table>
          <caption>Trust domains you may see</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Created</th>
              <th scope="col">Policy mode</th>
              <th scope="col">X509-SVID TTL (default / max)</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.data.trustDomains.map((td) => (
              <tr key={td.name}>
                <th scope="row">
                  <a href={href({ page: 'overview', td: td.name })}>{td.name}</a>
                </th>
                <td>{formatTime(td.createdAt)}</td>
                <td>{td.settings.policyMode}</td>
                <td>
                  {formatDuration(td.settings.x509DefaultTtl)} / {formatDuration(td.settings.x509MaxTtl)}
                </td>
                <td className="row-actions">
                  <a href={href({ page: 'settings', td: td.name })} aria-label={`Settings of ${td.name}`}>
                    Settings
                  </a>
                  <button
                    type="button"
                    className="danger"
                    aria-label={`Delete trust domain ${td.name}`}
                    onClick={() => void askDelete(td.name)}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <section aria-labelledby="create-td-heading" className="panel">
        <h2 id="create-td-heading">Create a trust domain</h2>
        <form onSubmit={(e) => void submit(e)} noValidate>
          <Field
            label="Trust domain name"
            value={name}
            onChange={(e) => {
              setName(e.target.value)
              if (nameError) setNameError(nameProblem(e.target.value))
            }}
            onBlur={() => name && setNameError(nameProblem(name))}
            error={nameError ?? serverNameError}
            placeholder="example.org"
            autoComplete="off"
            spellCheck={false}
          />
          <button type="submit" className="primary" disabled={create.pending}>
            Create trust domain
          </button>
        </form>
        <ErrorAlert error={create.error && !serverNameError ? create.error : undefined} />
        {created && <Notice>Trust domain {created} created.</Notice>}
      </section>

      {deleting && (
        <ConfirmDialog
          title={`Delete trust domain ${deleting.name}?`}
          confirmLabel={`Delete ${deleting.name} and everything in it`}
          typeToConfirm={deleting.name}
          typed={typed}
          onTyped={setTyped}
          pending={remove.pending}
          onClose={() => setDeleting(undefined)}
          onConfirm={() =>
            void remove.run(deleting.name).then((ok) => {
              if (!ok) return
              setDeleting(undefined)
              list.reload()
              onChanged()
            })
          }
        >
          <p>This cannot be undone. Deleting {deleting.name} deletes:</p>
          {deleting.impact ? (
            <ul className="impact">
              <li>
                its root CA and bundle: every SVID of {deleting.name} stops being trusted where the bundle is
                refreshed
              </li>
              <li>
                {deleting.impact.entries} registration {deleting.impact.entries === 1 ? 'entry' : 'entries'}:
                those workloads get no new SVIDs
              </li>
              <li>
                {deleting.impact.agents} {deleting.impact.agents === 1 ? 'agent' : 'agents'}: they can no
                longer renew and must attest again
              </li>
              <li>
                {deleting.impact.tokens} unused join {deleting.impact.tokens === 1 ? 'token' : 'tokens'}
              </li>
              <li>
                the network policy
                {deleting.impact.policyVersion > 0
                  ? ` (version ${deleting.impact.policyVersion}) and its history`
                  : ''}
                , the flow records and the audit log of {deleting.name}
              </li>
            </ul>
          ) : deleting.error ? (
            <ErrorAlert error={deleting.error} />
          ) : (
            <Loading what="what would be lost" />
          )}
          <ErrorAlert error={remove.error} />
        </ConfirmDialog>
      )}
    </section>
  )
}

const TTL_FIELDS: Array<{ key: keyof TrustDomainSettings; label: string }> = [
  { key: 'x509DefaultTtl', label: 'X509-SVID default TTL' },
  { key: 'x509MaxTtl', label: 'X509-SVID maximum TTL' },
  { key: 'jwtDefaultTtl', label: 'JWT-SVID default TTL' },
  { key: 'jwtMaxTtl', label: 'JWT-SVID maximum TTL' },
  { key: 'caTtl', label: 'Root CA TTL' },
]

type TtlKey = 'x509DefaultTtl' | 'x509MaxTtl' | 'jwtDefaultTtl' | 'jwtMaxTtl' | 'caTtl'

function checkSettings(values: Record<TtlKey, string>): {
  parsed?: Record<TtlKey, number>
  errors: Partial<Record<TtlKey, string>>
} {
  const errors: Partial<Record<TtlKey, string>> = {}
  const parsed = {} as Record<TtlKey, number>
  for (const { key } of TTL_FIELDS) {
    const k = key as TtlKey
    const n = parseDuration(values[k])
    if (n === undefined || n <= 0) errors[k] = 'Write a duration such as 90s, 30m, 1h or 7d.'
    else parsed[k] = n
  }
  if (!errors.x509DefaultTtl && !errors.x509MaxTtl && parsed.x509DefaultTtl > parsed.x509MaxTtl)
    errors.x509DefaultTtl = 'The default must not exceed the maximum.'
  if (!errors.jwtDefaultTtl && !errors.jwtMaxTtl && parsed.jwtDefaultTtl > parsed.jwtMaxTtl)
    errors.jwtDefaultTtl = 'The default must not exceed the maximum.'
  if (!errors.caTtl && !errors.x509MaxTtl && parsed.x509MaxTtl * 2 > parsed.caTtl)
    errors.caTtl = 'Must be at least twice the X509-SVID maximum TTL, so SVIDs outlive CA rotation.'
  return Object.keys(errors).length ? { errors } : { parsed, errors }
}

export function SettingsPage({ td, onChanged }: { td: string; onChanged(): void }) {
  const current = useApi<TrustDomain>(tdPath(td))
  if (current.error) return <ErrorAlert error={current.error} />
  if (!current.data) return <Loading what="settings" />
  return (
    <SettingsForm
      td={current.data}
      onSaved={() => {
        current.reload()
        onChanged()
      }}
    />
  )
}

function SettingsForm({ td, onSaved }: { td: TrustDomain; onSaved(): void }) {
  const [values, setValues] = useState<Record<TtlKey, string>>(() => {
    const v = {} as Record<TtlKey, string>
    for (const { key } of TTL_FIELDS) v[key as TtlKey] = formatDuration(td.settings[key] as number)
    return v
  })
  const [mode, setMode] = useState(td.settings.policyMode)
  const [errors, setErrors] = useState<Partial<Record<TtlKey, string>>>({})
  const [saved, setSaved] = useState(false)
  const save = useAction((settings: Record<string, unknown>) =>
    request<TrustDomain>('PATCH', tdPath(td.name), { settings }),
  )
  // The server's refusal names the field first ("x509MaxTtl must ..."): put it under that field.
  const serverField = save.error
    ? (TTL_FIELDS.find((f) => save.error!.message.startsWith(f.key))?.key as TtlKey | undefined)
    : undefined

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    setSaved(false)
    const checked = checkSettings(values)
    setErrors(checked.errors)
    if (!checked.parsed) return
    const ok = await save.run({ ...checked.parsed, policyMode: mode })
    if (ok) {
      setSaved(true)
      onSaved()
    }
  }

  return (
    <section aria-labelledby="settings-heading">
      <h1 id="settings-heading">Settings of {td.name}</h1>
      <form onSubmit={(e) => void submit(e)} noValidate className="panel">
        <fieldset>
          <legend>TTL limits</legend>
          {TTL_FIELDS.map(({ key, label }) => (
            <Field
              key={key}
              label={label}
              value={values[key as TtlKey]}
              onChange={(e) => {
                const next = { ...values, [key]: e.target.value }
                setValues(next)
                if (errors[key as TtlKey]) setErrors(checkSettings(next).errors)
              }}
              error={errors[key as TtlKey] ?? (serverField === key ? save.error?.message : undefined)}
              hint="e.g. 1h, 12h, 365d"
              spellCheck={false}
            />
          ))}
        </fieldset>
        <fieldset>
          <legend>Policy mode</legend>
          <label className="radio">
            <input
              type="radio"
              name="policyMode"
              value="baseline"
              checked={mode === 'baseline'}
              onChange={() => setMode('baseline')}
            />
            Baseline: observe; unidentified traffic passes and is reported
          </label>
          <label className="radio">
            <input
              type="radio"
              name="policyMode"
              value="explicit"
              checked={mode === 'explicit'}
              onChange={() => setMode('explicit')}
            />
            Explicit: only what a rule allows (check the policy page's dry run first)
          </label>
        </fieldset>
        <p className="muted">Key type: {td.settings.keyType} (fixed when the trust domain was created).</p>
        <button type="submit" className="primary" disabled={save.pending}>
          Save settings
        </button>
        <ErrorAlert error={save.error && !serverField ? save.error : undefined} />
        {saved && <Notice>Settings saved.</Notice>}
      </form>
      <p>
        <button type="button" className="link" onClick={() => navigate({ page: 'trust-domains' })}>
          Back to trust domains
        </button>
      </p>
    </section>
  )
}
