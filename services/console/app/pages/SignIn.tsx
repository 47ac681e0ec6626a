import { type FormEvent, useState } from 'react'
import { type NoSession, request, type Session } from '../api.ts'
import { ErrorAlert } from '../components/Alert.tsx'
import { Field } from '../components/Field.tsx'
import { useAction } from '../hooks.ts'

const PROBLEMS: Record<string, string> = {
  SESSION_EXPIRED: 'Your session expired.',
  SESSION_INVALID: 'Your session is no longer valid.',
  UNAUTHENTICATED: 'You are signed out.',
}

export function SignInPage({ info, onSignedIn }: { info: NoSession; onSignedIn(s: Session): void }) {
  const [token, setToken] = useState('')
  const [tokenError, setTokenError] = useState<string>()
  const signIn = useAction((t: string) => request<Session>('POST', '/auth/token-login', { token: t }))

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    if (!token.trim()) {
      setTokenError('Paste an API token (the bootstrap admin token is in .sigil/admin.token).')
      return
    }
    setTokenError(undefined)
    const session = await signIn.run(token.trim())
    if (session) onSignedIn(session)
  }

  return (
    <main className="signin">
      <h1>Sign in to Sigil</h1>
      {info.problem && (
        <div className="alert error" role="alert">
          {PROBLEMS[info.problem.code] ?? 'You were signed out.'} {info.problem.message}
        </div>
      )}
      {info.signIn.oidc && (
        <section aria-labelledby="sso-heading">
          <h2 id="sso-heading">Single sign-on</h2>
          <p>
            <a className="button primary" href="/auth/login">
              Sign in with single sign-on
            </a>
          </p>
        </section>
      )}
      <section aria-labelledby="token-heading">
        <h2 id="token-heading">{info.signIn.oidc ? 'Or with an API token' : 'With an API token'}</h2>
        <form onSubmit={(e) => void submit(e)} noValidate>
          <Field
            label="API token"
            type="password"
            autoComplete="off"
            spellCheck={false}
            value={token}
            onChange={(e) => setToken(e.target.value)}
            error={tokenError ?? (signIn.error ? signIn.error.message : undefined)}
            hint="On a fresh installation, use the bootstrap admin token from .sigil/admin.token."
          />
          <button type="submit" className="primary" disabled={signIn.pending}>
            Sign in with API token
          </button>
        </form>
        <ErrorAlert error={signIn.error && signIn.error.status >= 500 ? signIn.error : undefined} />
      </section>
    </main>
  )
}
