// The network policy: an editor checked by the server as you type, the mode switch with a dry run of
// what explicit mode would refuse over recent flows, and the policy recommended from observed flows,
// shown as a diff against the current one and applicable in one click.

import { useEffect, useId, useMemo, useRef, useState } from 'react'
import { type ApiError, type PolicyView, request, tdPath } from '../api.ts'
import { ErrorAlert, Loading, Notice } from '../components/Alert.tsx'
import { formatTime } from '../format.ts'
import { useAction, useApi, useDebounced } from '../hooks.ts'
import { diffLines } from './diff.ts'

interface Validation {
  valid: boolean
  mode?: string
  rules?: number
  error?: { code: string; message: string; details?: { line?: number; column?: number; path?: string } }
}

interface DryRun {
  wouldDeny: Array<{
    source: { spiffeId?: string; path?: string; agent?: string }
    destination: { spiffeId?: string; fqdn?: string }
    port: number
    reason: string
    count: number
    lastSeen: string
  }>
  wouldAllow: number
  flowsExamined: number
}

const WINDOWS = [
  { seconds: 3600, label: 'last hour' },
  { seconds: 6 * 3600, label: 'last 6 hours' },
  { seconds: 86400, label: 'last day' },
  { seconds: 7 * 86400, label: 'last 7 days' },
]

export default function PolicyPage({ td }: { td: string }) {
  const current = useApi<PolicyView>(tdPath(td, '/policy'))
  if (current.error) return <ErrorAlert error={current.error} />
  if (!current.data) return <Loading what="the policy" />
  return <PolicyEditor key={current.data.version} td={td} policy={current.data} reload={current.reload} />
}

function withMode(text: string, mode: string): string {
  return /^mode:.*$/m.test(text) ? text.replace(/^mode:.*$/m, `mode: ${mode}`) : `mode: ${mode}\n${text}`
}

function PolicyEditor({ td, policy, reload }: { td: string; policy: PolicyView; reload(): void }) {
  const initial = policy.text || `mode: ${policy.mode}\nallowWithin: []\nrules: []\n`
  const [text, setText] = useState(initial)
  const settled = useDebounced(text, 300)
  const [validation, setValidation] = useState<Validation>()
  const [saved, setSaved] = useState<string>()
  const save = useAction((body: Record<string, unknown>) =>
    request<PolicyView>('PUT', tdPath(td, '/policy'), body),
  )

  useEffect(() => {
    let live = true
    request<Validation>('POST', tdPath(td, '/policy/validate'), { text: settled })
      .then((v) => live && setValidation(v))
      .catch(
        (e: ApiError) => live && setValidation({ valid: false, error: { code: e.code, message: e.message } }),
      )
    return () => {
      live = false
    }
  }, [td, settled])

  const errorLine = validation?.valid === false ? validation.error?.details?.line : undefined
  const dirty = text !== initial
  const submit = async () => {
    setSaved(undefined)
    const next = await save.run({ text, expectedVersion: policy.version })
    if (next) {
      setSaved(`Saved as version ${next.version}.`)
      reload()
    }
  }

  return (
    <section aria-labelledby="policy-heading">
      <h1 id="policy-heading">Network policy of {td}</h1>
      <p>
        Version {policy.version}
        {policy.updatedAt && (
          <>
            , set {formatTime(policy.updatedAt)} by <span className="mono">{policy.updatedBy}</span>
          </>
        )}
        . Mode: <strong>{policy.mode}</strong>.
      </p>
      {saved && <Notice>{saved}</Notice>}
      <section className="panel" aria-labelledby="editor-heading">
        <h2 id="editor-heading">Policy file</h2>
        <Editor text={text} onChange={setText} errorLine={errorLine} invalid={validation?.valid === false} />
        <p
          className={`validation ${validation?.valid === false ? 'bad' : 'good'}`}
          role="status"
          aria-live="polite"
          id="policy-validation"
        >
          {validation === undefined
            ? 'Checking…'
            : validation.valid
              ? `Valid: ${validation.rules} rule${validation.rules === 1 ? '' : 's'}, mode ${validation.mode}.`
              : `Invalid: ${validation.error?.message}`}
        </p>
        <div className="actions left">
          <button
            type="button"
            className="primary"
            disabled={!dirty || save.pending || validation?.valid === false}
            onClick={() => void submit()}
          >
            Save policy
          </button>
          <button type="button" disabled={!dirty} onClick={() => setText(initial)}>
            Discard changes
          </button>
        </div>
        <ErrorAlert error={save.error}>
          {save.error?.code === 'POLICY_VERSION_CONFLICT'
            ? 'Someone changed the policy meanwhile; reload to see it. '
            : null}
        </ErrorAlert>
      </section>
      <ModeSwitch td={td} policy={policy} onSwitched={reload} />
      <Recommendation td={td} policy={policy} onApplied={reload} />
    </section>
  )
}

/** A textarea with line numbers; the line the server complained about is marked. */
function Editor({
  text,
  onChange,
  errorLine,
  invalid,
}: {
  text: string
  onChange(t: string): void
  errorLine?: number | undefined
  invalid: boolean
}) {
  const gutter = useRef<HTMLDivElement>(null)
  const lines = useMemo(() => text.split('\n').length, [text])
  return (
    <div className="editor">
      <div className="gutter" ref={gutter} aria-hidden="true">
        {Array.from({ length: lines }, (_, i) => (
          // biome-ignore lint/suspicious/noArrayIndexKey: line numbers are their own identity
          <div key={i} className={i + 1 === errorLine ? 'error-line' : undefined}>
            {i + 1}
          </div>
        ))}
      </div>
      <textarea
        aria-label="Policy file"
        aria-invalid={invalid ? true : undefined}
        aria-describedby="policy-validation"
        className="mono"
        spellCheck={false}
        wrap="off"
        rows={Math.min(30, Math.max(12, lines + 1))}
        value={text}
        onChange={(e) => onChange(e.target.value)}
        onScroll={(e) => {
          if (gutter.current) gutter.current.scrollTop = e.currentTarget.scrollTop
        }}
      />
    </div>
  )
}

function ModeSwitch({ td, policy, onSwitched }: { td: string; policy: PolicyView; onSwitched(): void }) {
  const [since, setSince] = useState(3600)
  const dry = useAction(() => request<DryRun>('POST', tdPath(td, '/policy/dry-run'), { since }))
  const [result, setResult] = useState<DryRun>()
  const switchMode = useAction((mode: string) =>
    request<PolicyView>('PUT', tdPath(td, '/policy/mode'), { mode }),
  )
  const sinceId = useId()
  const target = policy.mode === 'baseline' ? 'explicit' : 'baseline'

  return (
    <section className="panel" aria-labelledby="mode-heading">
      <h2 id="mode-heading">Mode</h2>
      <p>
        <strong>Baseline</strong> observes: identified workloads talk as the rules say, unidentified traffic
        passes and is reported. <strong>Explicit</strong> refuses everything no rule allows.
      </p>
      <p>
        Running mode: <strong>{policy.mode}</strong>
      </p>
      {policy.mode === 'baseline' ? (
        <>
          <div className="actions left">
            <label htmlFor={sinceId}>Flows to check</label>
            <select id={sinceId} value={since} onChange={(e) => setSince(Number(e.target.value))}>
              {WINDOWS.map((w) => (
                <option key={w.seconds} value={w.seconds}>
                  {w.label}
                </option>
              ))}
            </select>
            <button
              type="button"
              onClick={() => void dry.run().then((r) => r && setResult(r))}
              disabled={dry.pending}
            >
              Check what would break
            </button>
          </div>
          <ErrorAlert error={dry.error} />
          {result && (
            <section aria-label="Dry run result">
              <p>
                Of {result.flowsExamined} flows in the window, explicit mode would allow {result.wouldAllow}{' '}
                and refuse {result.wouldDeny.reduce((n, g) => n + g.count, 0)}.
              </p>
              {result.wouldDeny.length > 0 && (
                <table>
                  <caption>What explicit mode would refuse</caption>
                  <thead>
                    <tr>
                      <th scope="col">Source</th>
                      <th scope="col">Destination</th>
                      <th scope="col">Port</th>
                      <th scope="col">Flows</th>
                      <th scope="col">Why</th>
                    </tr>
                  </thead>
                  <tbody>
                    {result.wouldDeny.map((g) => (
                      <tr
                        key={`${g.source.spiffeId ?? g.source.path}|${g.destination.spiffeId ?? g.destination.fqdn}|${g.port}`}
                      >
                        <td className="mono">
                          {g.source.spiffeId ??
                            `${g.source.path ?? 'unknown process'} on ${g.source.agent ?? 'unknown agent'}`}
                        </td>
                        <td className="mono">{g.destination.spiffeId ?? g.destination.fqdn ?? 'unknown'}</td>
                        <td>{g.port}</td>
                        <td>{g.count}</td>
                        <td>{g.reason}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
              <button
                type="button"
                className="danger"
                disabled={switchMode.pending}
                onClick={() => void switchMode.run('explicit').then((p) => p && onSwitched())}
              >
                Switch to explicit mode
              </button>
            </section>
          )}
        </>
      ) : (
        <button
          type="button"
          disabled={switchMode.pending}
          onClick={() => void switchMode.run(target).then((p) => p && onSwitched())}
        >
          Switch to baseline mode
        </button>
      )}
      <ErrorAlert error={switchMode.error} />
    </section>
  )
}

function Recommendation({ td, policy, onApplied }: { td: string; policy: PolicyView; onApplied(): void }) {
  const [since, setSince] = useState(3600)
  const rec = useAction(() =>
    request<{ text: string }>('GET', tdPath(td, `/policy/recommendation?format=yaml&since=${since}`)),
  )
  const [recommended, setRecommended] = useState<string>()
  const apply = useAction((text: string) =>
    request<PolicyView>('PUT', tdPath(td, '/policy'), { text, expectedVersion: policy.version }),
  )
  const sinceId = useId()
  const diff = useMemo(
    () => (recommended === undefined ? [] : diffLines(policy.text, recommended)),
    [policy.text, recommended],
  )
  const changes = diff.filter((d) => d.kind !== 'same').length

  return (
    <section className="panel" aria-labelledby="rec-heading">
      <h2 id="rec-heading">Recommended policy</h2>
      <p>
        The smallest allow-only policy that admits the identified flows observed in the window, in the running
        mode.
      </p>
      <div className="actions left">
        <label htmlFor={sinceId}>Flows to learn from</label>
        <select id={sinceId} value={since} onChange={(e) => setSince(Number(e.target.value))}>
          {WINDOWS.map((w) => (
            <option key={w.seconds} value={w.seconds}>
              {w.label}
            </option>
          ))}
        </select>
        <button
          type="button"
          disabled={rec.pending}
          onClick={() => void rec.run().then((r) => r && setRecommended(withMode(r.text, policy.mode)))}
        >
          Show recommended policy
        </button>
      </div>
      <ErrorAlert error={rec.error} />
      {recommended !== undefined && (
        <>
          <table className="diff">
            <caption>
              Changes from the current policy (version {policy.version}): {changes} line
              {changes === 1 ? '' : 's'}
            </caption>
            <tbody>
              {diff.map((d, i) => (
                // biome-ignore lint/suspicious/noArrayIndexKey: diff rows are positional
                <tr key={i} className={d.kind}>
                  <td className="sign" aria-label={d.kind === 'same' ? 'unchanged' : d.kind}>
                    {d.kind === 'added' ? '+' : d.kind === 'removed' ? '−' : ' '}
                  </td>
                  <td className="mono">{d.text}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <button
            type="button"
            className="primary"
            disabled={apply.pending || changes === 0}
            onClick={() => void apply.run(recommended).then((p) => p && onApplied())}
          >
            Apply recommended policy
          </button>
          <ErrorAlert error={apply.error} />
        </>
      )}
    </section>
  )
}
