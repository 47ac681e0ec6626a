// Where the Workload API socket is (the contract): --socket, else $SPIFFE_ENDPOINT_SOCKET
// (unix:///path), else /run/sigil/agent.sock. Shared by the agent and the clients.

export const DEFAULT_SOCKET_PATH = '/run/sigil/agent.sock'

export class SocketPathError extends Error {
  override name = 'SocketPathError'
}

/** A socket address (unix:///path, unix:/path or /path) as a filesystem path. */
export function socketAddressToPath(address: string, what: string): string {
  let p: string | undefined
  if (address.startsWith('/')) p = address
  else if (address.startsWith('unix://')) p = address.slice('unix://'.length)
  else if (address.startsWith('unix:')) p = address.slice('unix:'.length)
  if (!p?.startsWith('/')) {
    throw new SocketPathError(
      `${what} ${JSON.stringify(address)} is not a Unix socket address; use unix:///absolute/path`,
    )
  }
  return p
}

export function resolveSocketPath(flag: string | undefined, env: Record<string, string | undefined>): string {
  if (flag) return socketAddressToPath(flag, '--socket')
  // Empty environment variables count as unset.
  if (env.SPIFFE_ENDPOINT_SOCKET)
    return socketAddressToPath(env.SPIFFE_ENDPOINT_SOCKET, 'SPIFFE_ENDPOINT_SOCKET')
  return DEFAULT_SOCKET_PATH
}
