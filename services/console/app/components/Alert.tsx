import type { ReactNode } from 'react'
import type { ApiError } from '../api.ts'

/** An error the user must see: announced by screen readers, with the API's code when there is one. */
export function ErrorAlert({ error, children }: { error?: ApiError | undefined; children?: ReactNode }) {
  if (!error && !children) return null
  return (
    <div className="alert error" role="alert">
      {children}
      {error && (
        <>
          {error.message}
          {error.code && error.code !== 'CLIENT' && <span className="code"> ({error.code})</span>}
        </>
      )}
    </div>
  )
}

export function Notice({ children }: { children: ReactNode }) {
  return (
    <div className="alert notice" role="status">
      {children}
    </div>
  )
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status">
      Loading {what}…
    </p>
  )
}
