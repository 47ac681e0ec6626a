import { type InputHTMLAttributes, type ReactNode, useId } from 'react'

/** A labelled input whose error (from the form's own check or the server's refusal) is tied to it. */
export function Field({
  label,
  error,
  hint,
  children,
  ...input
}: {
  label: string
  error?: string | undefined
  hint?: ReactNode
  children?: ReactNode
} & InputHTMLAttributes<HTMLInputElement>) {
  const id = useId()
  const errorId = `${id}-error`
  const hintId = `${id}-hint`
  const described = [error ? errorId : '', hint ? hintId : ''].filter(Boolean).join(' ') || undefined
  return (
    <div className={`field${error ? ' invalid' : ''}`}>
      <label htmlFor={id}>{label}</label>
      <input id={id} aria-invalid={error ? true : undefined} aria-describedby={described} {...input} />
      {children}
      {hint && (
        <div className="hint" id={hintId}>
          {hint}
        </div>
      )}
      {error && (
        <div className="field-error" id={errorId}>
          {error}
        </div>
      )}
    </div>
  )
}
