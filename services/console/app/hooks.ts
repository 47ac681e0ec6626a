import { useCallback, useEffect, useRef, useState } from 'react'
import { ApiError, get } from './api.ts'

export interface Loaded<T> {
  data: T | undefined
  error: ApiError | undefined
  loading: boolean
  reload(): void
}

/** GETs `path` (again when it changes, or on reload()); undefined path: nothing. */
export function useApi<T>(path: string | undefined): Loaded<T> {
  const [data, setData] = useState<T>()
  const [error, setError] = useState<ApiError>()
  const [loading, setLoading] = useState(path !== undefined)
  const [tick, setTick] = useState(0)
  const reload = useCallback(() => setTick((n) => n + 1), [])
  // biome-ignore lint/correctness/useExhaustiveDependencies: tick is how reload() asks for the same path again
  useEffect(() => {
    if (path === undefined) return
    let live = true
    setLoading(true)
    get<T>(path)
      .then((d) => {
        if (!live) return
        setData(d)
        setError(undefined)
      })
      .catch((e: unknown) => {
        if (!live) return
        setError(e instanceof ApiError ? e : new ApiError(0, 'CLIENT', String(e)))
      })
      .finally(() => {
        if (live) setLoading(false)
      })
    return () => {
      live = false
    }
  }, [path, tick])
  return { data, error, loading, reload }
}

/** A value that settles `ms` after its last change (validation as you type). */
export function useDebounced<T>(value: T, ms: number): T {
  const [settled, setSettled] = useState(value)
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms)
    return () => clearTimeout(timer)
  }, [value, ms])
  return settled
}

/** Runs an async action, keeping its pending state and error. */
export function useAction<A extends unknown[], R>(action: (...args: A) => Promise<R>) {
  const [pending, setPending] = useState(false)
  const [error, setError] = useState<ApiError>()
  const ref = useRef(action)
  ref.current = action
  const run = useCallback(async (...args: A): Promise<R | undefined> => {
    setPending(true)
    setError(undefined)
    try {
      return await ref.current(...args)
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, 'CLIENT', String(e)))
      return undefined
    } finally {
      setPending(false)
    }
  }, [])
  return { run, pending, error, setError }
}
