// User and group names for the unix:user and unix:group selectors, from the agent's /etc/passwd and
// /etc/group (re-read when they change). The names are the agent host's view, like SPIRE's.

import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'

export interface Accounts {
  userName(uid: number): string | undefined
  groupName(gid: number): string | undefined
}

interface Table {
  stamp: string
  names: Map<number, string>
}

export class EtcAccounts implements Accounts {
  readonly #passwd: string
  readonly #group: string
  #users: Table | undefined
  #groups: Table | undefined

  constructor(etc = '/etc') {
    this.#passwd = path.join(etc, 'passwd')
    this.#group = path.join(etc, 'group')
  }

  userName(uid: number): string | undefined {
    this.#users = load(this.#passwd, this.#users)
    return this.#users?.names.get(uid)
  }

  groupName(gid: number): string | undefined {
    this.#groups = load(this.#group, this.#groups)
    return this.#groups?.names.get(gid)
  }
}

function load(file: string, current: Table | undefined): Table | undefined {
  let stamp: string
  try {
    const st = statSync(file, { bigint: true })
    stamp = `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
  } catch {
    return undefined
  }
  if (current?.stamp === stamp) return current
  return { stamp, names: parseColonFile(readFileSync(file, 'utf8')) }
}

/** name:x:id:... lines (passwd and group share the first three fields); the first name for an id wins. */
export function parseColonFile(text: string): Map<number, string> {
  const names = new Map<number, string>()
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const [name, , id] = line.split(':')
    if (!name || !id || !/^\d+$/.test(id)) continue
    const n = Number(id)
    if (!names.has(n)) names.set(n, name)
  }
  return names
}
