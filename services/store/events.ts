// The listeners of Store.watch, shared by both stores. A listener can neither break the write that
// caused an event nor keep the other listeners from hearing it.
import type { ChangeEvent } from './store.ts'

type Listener = (event: ChangeEvent) => void

const KINDS: ReadonlySet<string> = new Set<ChangeEvent['kind']>([
  'entry',
  'bundle',
  'agent',
  'trust-domain',
  'policy',
])

function report(err: unknown): void {
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err)
  process.emitWarning(`a store change listener failed: ${detail}`, 'SigilStoreWarning')
}

export function changeEvent(trustDomain: string, kind: ChangeEvent['kind'], id?: string): ChangeEvent {
  return id === undefined ? { trustDomain, kind } : { trustDomain, kind, id }
}

/** The event in a published message, or undefined when the message is not one. */
export function parseChangeEvent(text: string): ChangeEvent | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  const { trustDomain, kind, id } = (value ?? {}) as Record<string, unknown>
  if (typeof trustDomain !== 'string' || typeof kind !== 'string' || !KINDS.has(kind)) return undefined
  if (id !== undefined && typeof id !== 'string') return undefined
  return changeEvent(trustDomain, kind as ChangeEvent['kind'], id)
}

export class ChangeListeners {
  readonly #listeners = new Set<Listener>()

  /** Returns the unsubscribe function; watching the same function twice makes two subscriptions. */
  add(listener: Listener): () => void {
    const own: Listener = (event) => listener(event)
    this.#listeners.add(own)
    return () => {
      this.#listeners.delete(own)
    }
  }

  clear(): void {
    this.#listeners.clear()
  }

  emit(event: ChangeEvent): void {
    // Frozen: one listener cannot change what the next one sees.
    const frozen = Object.freeze({ ...event })
    for (const listener of this.#listeners) {
      try {
        const result: unknown = listener(frozen)
        if (result instanceof Promise) result.catch(report)
      } catch (err) {
        report(err)
      }
    }
  }
}
