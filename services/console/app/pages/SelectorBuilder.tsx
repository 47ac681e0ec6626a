// Builds selectors from the types the server knows (the server's own table and parser, bundled here, so
// the builder refuses exactly what the API refuses). For a code-DNA selector (unix:sha256) it hashes a
// binary the user picks, in the browser: the file never leaves the machine.

import { useId, useState } from 'react'
import { parseSelector, selectorKinds } from '../../../registry/selectors.ts'

const HINTS: Record<string, string> = {
  uid: 'a user ID, e.g. 1000',
  gid: 'a group ID, e.g. 1000',
  user: 'a user name, e.g. www-data',
  group: 'a group name',
  path: 'an absolute path, e.g. /usr/bin/app',
  sha256: '64 lowercase hex digits: pick the executable below to compute them',
  ns: 'a namespace, e.g. prod',
  sa: 'a service account name',
  'pod-label': 'KEY:VALUE, e.g. app:web',
  tag: 'KEY:VALUE',
  subject: 'cn:NAME',
}

async function sha256Hex(file: File): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer())
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('')
}

export function SelectorBuilder({
  selectors,
  onChange,
  error,
}: {
  selectors: string[]
  onChange(next: string[]): void
  error?: string | undefined
}) {
  const [type, setType] = useState('unix')
  const keys = Object.keys(selectorKinds[type]?.keys ?? {})
  const [key, setKey] = useState(keys[0] ?? '')
  const [value, setValue] = useState('')
  const [problem, setProblem] = useState<string>()
  const [digest, setDigest] = useState<{ file: string; hex: string }>()
  const id = useId()
  const listErrorId = `${id}-list-error`

  const add = () => {
    const text = `${type}:${key}:${value.trim()}`
    try {
      parseSelector(text)
    } catch (e) {
      setProblem((e as Error).message)
      return
    }
    if (selectors.includes(text)) {
      setProblem(`${text} is already in the list`)
      return
    }
    setProblem(undefined)
    onChange([...selectors, text])
    setValue('')
    setDigest(undefined)
  }

  const workload = Object.entries(selectorKinds).filter(([, k]) => k.scope === 'workload')
  const node = Object.entries(selectorKinds).filter(([, k]) => k.scope === 'node')
  return (
    <fieldset className={`selector-builder${error ? ' invalid' : ''}`}>
      <legend>Selectors</legend>
      {selectors.length === 0 ? (
        <p className="muted">No selectors yet: a workload matches when it has all of them.</p>
      ) : (
        <ul className="chips" aria-label="Selectors of this entry">
          {selectors.map((s) => (
            <li key={s}>
              <span className="mono">{s}</span>
              <button
                type="button"
                className="link"
                aria-label={`Remove selector ${s}`}
                onClick={() => onChange(selectors.filter((x) => x !== s))}
              >
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      {error && (
        <div className="field-error" id={listErrorId} role="alert">
          {error}
        </div>
      )}
      <div className="builder-row">
        <label>
          <span>Selector type</span>
          <select
            value={type}
            onChange={(e) => {
              setType(e.target.value)
              setKey(Object.keys(selectorKinds[e.target.value]?.keys ?? {})[0] ?? '')
              setProblem(undefined)
            }}
          >
            <optgroup label="Workload">
              {workload.map(([t]) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </optgroup>
            <optgroup label="Node (for node alias entries)">
              {node.map(([t]) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </optgroup>
          </select>
        </label>
        <label>
          <span>Selector key</span>
          <select
            value={key}
            onChange={(e) => {
              setKey(e.target.value)
              setProblem(undefined)
            }}
          >
            {keys.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </label>
        <label className="grow">
          <span>Selector value</span>
          <input
            value={value}
            onChange={(e) => setValue(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter') {
                e.preventDefault()
                add()
              }
            }}
            placeholder={HINTS[key] ?? ''}
            aria-invalid={problem ? true : undefined}
            aria-describedby={problem ? `${id}-problem` : undefined}
            spellCheck={false}
            className="mono"
          />
        </label>
        <button type="button" onClick={add}>
          Add selector
        </button>
      </div>
      {type === 'unix' && key === 'sha256' && (
        <div className="field">
          <label htmlFor={`${id}-file`}>Executable for the code-DNA selector</label>
          <input
            id={`${id}-file`}
            type="file"
            onChange={(e) => {
              const file = e.target.files?.[0]
              if (!file) return
              void sha256Hex(file).then((hex) => {
                setDigest({ file: file.name, hex })
                setValue(hex)
                setProblem(undefined)
              })
            }}
          />
          <div role="status" className="digest">
            {digest && (
              <>
                sha256 of {digest.file}: <code className="mono">{digest.hex}</code>
              </>
            )}
          </div>
        </div>
      )}
      {problem && (
        <div className="field-error" id={`${id}-problem`} role="alert">
          {problem}
        </div>
      )}
    </fieldset>
  )
}
