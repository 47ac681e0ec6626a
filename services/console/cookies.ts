// The console's two cookies. Both are HttpOnly and Secure (the console is HTTPS only) with the
// `__Host-` prefix, so no subdomain and no plain-HTTP page can set or shadow them.
// - the session: SameSite=Strict; a cross-site page can never make the browser send it.
// - the sign-in state (PKCE verifier, state, nonce): SameSite=Lax, because the provider sends the
//   browser back with a cross-site top-level navigation, which Strict cookies do not ride along on.

export const SESSION_COOKIE = '__Host-sigil-session'
export const LOGIN_COOKIE = '__Host-sigil-login'

/** The value of one cookie in a Cookie header, or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

export function setCookie(
  name: string,
  value: string,
  opts: { maxAgeSeconds: number; sameSite: 'Strict' | 'Lax' },
): string {
  return `${name}=${value}; Path=/; Max-Age=${opts.maxAgeSeconds}; Secure; HttpOnly; SameSite=${opts.sameSite}`
}

export function clearCookie(name: string, sameSite: 'Strict' | 'Lax' = 'Strict'): string {
  return `${name}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=${sameSite}`
}
