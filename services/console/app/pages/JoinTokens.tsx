import { type FormEvent, useState } from 'react'
import { type JoinToken, request, tdPath } from '../api.ts'
import { ErrorAlert, Loading, Notice } from '../components/Alert.tsx'
import { CopyButton } from '../components/CopyButton.tsx'
import { ConfirmDialog } from '../components/Dialog.tsx'
import { Field } from '../components/Field.tsx'
import { formatTime, parseDuration, relative } from '../format.ts'
import { useAction, useApi } from '../hooks.ts'

interface Created extends JoinToken {
  token: string
}

export function installCommand(server: string, td: string, token: string): string {
  return [
    'sigil agent run \\',
    `  --server ${server} \\`,
    `  --trust-domain ${td} \\`,
    '  --trust-bundle server-ca.pem \\',
    `  --join-token ${token}`,
  ].join('\n')
}

export function JoinTokensPage({ td }: { td: string }) {
  const tokens = useApi<{ joinTokens: JoinToken[] }>(tdPath(td, '/join-tokens'))
  const [ttl, setTtl] = useState('1h')
  const [spiffeId, setSpiffeId] = useState('')
  const [errors, setErrors] = useState<{ ttl?: string; spiffeId?: string }>({})
  const [created, setCreated] = useState<Created>()
  const [revoking, setRevoking] = useState<JoinToken>()
  const [done, setDone] = useState<string>()
  const create = useAction((body: Record<string, unknown>) =>
    request<Created>('POST', tdPath(td, '/join-tokens'), body),
  )
  const revoke = useAction((id: string) =>
    request('DELETE', tdPath(td, `/join-tokens/${encodeURIComponent(id)}`)).then(() => true),
  )
  const serverField = create.error
    ? create.error.message.startsWith('spiffeId') || create.error.code.startsWith('SPIFFE_ID')
      ? 'spiffeId'
      : create.error.code.startsWith('TTL') || create.error.message.startsWith('ttl')
        ? 'ttl'
        : undefined
    : undefined

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    const next: typeof errors = {}
    const seconds = parseDuration(ttl)
    if (seconds === undefined || seconds <= 0) next.ttl = 'A duration such as 10m, 1h or 1d'
    if (spiffeId && !spiffeId.startsWith(`spiffe://${td}/sigil/agent/`))
      next.spiffeId = `Leave empty, or an agent ID such as spiffe://${td}/sigil/agent/join_token/node-1`
    setErrors(next)
    if (Object.keys(next).length) return
    setCreated(undefined)
    const made = await create.run({ ttl: seconds, ...(spiffeId ? { spiffeId } : {}) })
    if (made) {
      setCreated(made)
      tokens.reload()
    }
  }

  const command = created ? installCommand(window.location.origin, td, created.token) : ''
  return (
    <section aria-labelledby="tokens-heading">
      <h1 id="tokens-heading">Join tokens of {td}</h1>
      <section className="panel" aria-labelledby="new-token-heading">
        <h2 id="new-token-heading">Create a join token</h2>
        <form onSubmit={(e) => void submit(e)} noValidate>
          <div className="two">
            <Field
              label="Valid for"
              value={ttl}
              onChange={(e) => setTtl(e.target.value)}
              error={errors.ttl ?? (serverField === 'ttl' ? create.error?.message : undefined)}
              hint="A token is single use."
            />
            <Field
              label="Agent SPIFFE ID (optional)"
              className="mono"
              value={spiffeId}
              onChange={(e) => setSpiffeId(e.target.value)}
              error={errors.spiffeId ?? (serverField === 'spiffeId' ? create.error?.message : undefined)}
              placeholder={`spiffe://${td}/sigil/agent/join_token/…`}
              spellCheck={false}
            />
          </div>
          <button type="submit" className="primary" disabled={create.pending}>
            Create join token
          </button>
        </form>
        <ErrorAlert error={create.error && !serverField ? create.error : undefined} />
        {created && (
          <section className="created" aria-label="New join token">
            <p>
              <strong>Copy the token now: it is shown only once.</strong> It expires{' '}
              {relative(created.expiresAt)}.
            </p>
            <div className="copyable">
              <label htmlFor="new-token">Join token</label>
              <input
                id="new-token"
                className="mono"
                readOnly
                value={created.token}
                onFocus={(e) => e.target.select()}
              />
              <CopyButton text={created.token} label="Copy token" />
            </div>
            <div className="copyable">
              <label htmlFor="install-command">Agent install command</label>
              <textarea
                id="install-command"
                className="mono"
                readOnly
                rows={5}
                value={command}
                onFocus={(e) => e.target.select()}
              />
              <CopyButton text={command} label="Copy command" />
            </div>
            <p className="muted">
              server-ca.pem is in the trust service's data directory (.sigil/server-ca.pem).
            </p>
          </section>
        )}
      </section>
      {done && <Notice>{done}</Notice>}
      <ErrorAlert error={tokens.error} />
      {!tokens.data && !tokens.error && <Loading what="join tokens" />}
      {tokens.data && (
        <table>
          <caption>Unused join tokens ({tokens.data.joinTokens.length})</caption>
          <thead>
            <tr>
              <th scope="col">Token ID (hash)</th>
              <th scope="col">Agent SPIFFE ID</th>
              <th scope="col">Created</th>
              <th scope="col">Expires</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {tokens.data.joinTokens.map((t) => (
              <tr key={t.id}>
                <th scope="row" className="mono" title={t.id}>
                  {t.id.slice(0, 12)}…
                </th>
                <td className="mono">{t.spiffeId ?? 'chosen at attestation'}</td>
                <td>{formatTime(t.createdAt)}</td>
                <td title={formatTime(t.expiresAt)}>{relative(t.expiresAt)}</td>
                <td>
                  <button
                    type="button"
                    className="danger"
                    aria-label={`Revoke join token ${t.id.slice(0, 12)}`}
                    onClick={() => setRevoking(t)}
                  >
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {revoking && (
        <ConfirmDialog
          title="Revoke this join token?"
          confirmLabel="Revoke token"
          pending={revoke.pending}
          onClose={() => {
            setRevoking(undefined)
            revoke.setError(undefined)
          }}
          onConfirm={() =>
            void revoke.run(revoking.id).then((ok) => {
              if (!ok) return
              setDone('Join token revoked.')
              setRevoking(undefined)
              tokens.reload()
            })
          }
        >
          <p>No agent can attest with it afterwards.</p>
          <ErrorAlert error={revoke.error} />
        </ConfirmDialog>
      )}
    </section>
  )
}
