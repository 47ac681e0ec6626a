import { lazy, Suspense, useCallback, useEffect, useState } from 'react'
import {
  type ApiError,
  get,
  type NoSession,
  onSessionProblem,
  request,
  type Session,
  setCsrfToken,
  type TrustDomain,
} from './api.ts'
import { ErrorAlert, Loading } from './components/Alert.tsx'
import { useApi } from './hooks.ts'
import { AgentsPage } from './pages/Agents.tsx'
import { AuditPage } from './pages/Audit.tsx'
import { BundlePage } from './pages/Bundle.tsx'
import { EntriesPage } from './pages/Entries.tsx'
import { JoinTokensPage } from './pages/JoinTokens.tsx'
import { OverviewPage } from './pages/Overview.tsx'
import { SignInPage } from './pages/SignIn.tsx'
import { SettingsPage, TrustDomainsPage } from './pages/TrustDomains.tsx'
import { href, navigate, parseRoute, type Route, useRoute } from './router.ts'
import { roleOn, SessionContext } from './session.ts'

// The heavy pages load on demand, so the first load stays small.
const PolicyPage = lazy(() => import('./policy/PolicyPage.tsx'))
const GraphPage = lazy(() => import('./graph/GraphPage.tsx'))

type State =
  | { kind: 'loading' }
  | { kind: 'signed-out'; info: NoSession }
  | { kind: 'signed-in'; session: Session }

export function App() {
  const [state, setState] = useState<State>({ kind: 'loading' })
  const [loadError, setLoadError] = useState<ApiError>()

  const refresh = useCallback(async () => {
    try {
      const s = await get<Session | NoSession>('/v1/session')
      if (s.authenticated) {
        setCsrfToken(s.csrfToken)
        setState({ kind: 'signed-in', session: s })
      } else {
        setState({ kind: 'signed-out', info: s })
      }
    } catch (e) {
      setLoadError(e as ApiError)
    }
  }, [])

  useEffect(() => {
    void refresh()
    return onSessionProblem((e) =>
      setState((prev) => ({
        kind: 'signed-out',
        info: {
          authenticated: false,
          signIn: prev.kind === 'signed-in' ? prev.session.signIn : { oidc: false },
          problem: { code: e.code, message: e.message },
        },
      })),
    )
  }, [refresh])

  if (loadError) {
    return (
      <main className="signin">
        <h1>Sigil</h1>
        <ErrorAlert error={loadError} />
      </main>
    )
  }
  if (state.kind === 'loading') return <Loading what="the console" />
  if (state.kind === 'signed-out') {
    return (
      <SignInPage
        info={state.info}
        onSignedIn={(session) => {
          setCsrfToken(session.csrfToken)
          setState({ kind: 'signed-in', session })
        }}
      />
    )
  }
  return (
    <SessionContext.Provider value={state.session}>
      <Shell
        session={state.session}
        onSignedOut={() =>
          setState({ kind: 'signed-out', info: { authenticated: false, signIn: state.session.signIn } })
        }
      />
    </SessionContext.Provider>
  )
}

const SECTIONS: Array<{ page: Exclude<Route['page'], 'home' | 'trust-domains'>; label: string }> = [
  { page: 'overview', label: 'Overview' },
  { page: 'agents', label: 'Agents' },
  { page: 'entries', label: 'Registration entries' },
  { page: 'join-tokens', label: 'Join tokens' },
  { page: 'bundle', label: 'Bundle' },
  { page: 'policy', label: 'Policy' },
  { page: 'graph', label: 'Network graph' },
  { page: 'audit', label: 'Audit log' },
  { page: 'settings', label: 'Settings' },
]

function Shell({ session, onSignedOut }: { session: Session; onSignedOut(): void }) {
  const route = useRoute()
  const domains = useApi<{ trustDomains: TrustDomain[] }>('/v1/trust-domains')
  const list = domains.data?.trustDomains ?? []
  const current = 'td' in route ? route.td : list[0]?.name
  const [signOutError, setSignOutError] = useState<ApiError>()

  useEffect(() => {
    if (route.page !== 'home' || !domains.data) return
    // The user may have gone elsewhere while the list loaded.
    if (parseRoute(window.location.hash).page !== 'home') return
    if (list[0]) navigate({ page: 'overview', td: list[0].name })
    else navigate({ page: 'trust-domains' })
  }, [route.page, domains.data, list])

  // A trust domain made elsewhere (the CLI, another tab) since the list loaded: load it again.
  const routeTd = 'td' in route ? route.td : undefined
  const { reload: reloadDomains } = domains
  useEffect(() => {
    if (routeTd && domains.data && !domains.data.trustDomains.some((d) => d.name === routeTd)) reloadDomains()
  }, [routeTd, domains.data, reloadDomains])

  useEffect(() => {
    const name =
      route.page === 'trust-domains' ? 'Trust domains' : SECTIONS.find((s) => s.page === route.page)?.label
    document.title = `${name ?? 'Sigil'}${'td' in route ? ` · ${route.td}` : ''} · Sigil`
  }, [route])

  const signOut = async () => {
    try {
      const res = await request<{ endSessionUrl?: string }>('POST', '/auth/logout')
      if (res.endSessionUrl) window.location.assign(res.endSessionUrl)
      else onSignedOut()
    } catch (e) {
      setSignOutError(e as ApiError)
    }
  }

  const role = current ? roleOn(session.grants, current) : undefined
  return (
    <div className="shell">
      <header className="top">
        <a className="brand" href="#/">
          Sigil
        </a>
        <label className="td-picker">
          <span>Trust domain</span>
          <select
            value={current ?? ''}
            onChange={(e) => {
              const page = 'td' in route ? route.page : 'overview'
              navigate({ page, td: e.target.value } as Route)
            }}
            disabled={list.length === 0}
          >
            {list.length === 0 && <option value="">none yet</option>}
            {list.map((d) => (
              <option key={d.name} value={d.name}>
                {d.name}
              </option>
            ))}
          </select>
        </label>
        <span className="who">
          Signed in as <strong>{session.user.name}</strong>
          {role && <span className={`role role-${role}`}>{role}</span>}
        </span>
        <button type="button" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      <div className="body">
        <nav aria-label="Sections">
          <ul>
            <li>
              <a
                href={href({ page: 'trust-domains' })}
                aria-current={route.page === 'trust-domains' ? 'page' : undefined}
              >
                Trust domains
              </a>
            </li>
            {current &&
              SECTIONS.map((s) => (
                <li key={s.page}>
                  <a
                    href={href({ page: s.page, td: current })}
                    aria-current={route.page === s.page ? 'page' : undefined}
                  >
                    {s.label}
                  </a>
                </li>
              ))}
          </ul>
        </nav>
        <main>
          <ErrorAlert error={signOutError ?? domains.error} />
          {'td' in route && role === 'viewer' && (
            <p className="alert notice" role="note">
              You are a viewer of {route.td}: the server refuses changes you try here.
            </p>
          )}
          <Suspense fallback={<Loading what="the page" />}>
            <Page route={route} onDomainsChanged={domains.reload} />
          </Suspense>
        </main>
      </div>
    </div>
  )
}

function Page({ route, onDomainsChanged }: { route: Route; onDomainsChanged(): void }) {
  switch (route.page) {
    case 'home':
      return <Loading what="trust domains" />
    case 'trust-domains':
      return <TrustDomainsPage onChanged={onDomainsChanged} />
    case 'overview':
      return <OverviewPage key={route.td} td={route.td} />
    case 'settings':
      return <SettingsPage key={route.td} td={route.td} onChanged={onDomainsChanged} />
    case 'agents':
      return <AgentsPage key={route.td} td={route.td} />
    case 'entries':
      return <EntriesPage key={route.td} td={route.td} />
    case 'join-tokens':
      return <JoinTokensPage key={route.td} td={route.td} />
    case 'bundle':
      return <BundlePage key={route.td} td={route.td} />
    case 'policy':
      return <PolicyPage key={route.td} td={route.td} />
    case 'graph':
      return <GraphPage key={route.td} td={route.td} />
    case 'audit':
      return <AuditPage key={route.td} td={route.td} />
  }
}
