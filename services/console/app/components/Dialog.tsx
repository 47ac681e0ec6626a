import { type ReactNode, useEffect, useId, useRef } from 'react'

/** A modal dialog (the native <dialog>: focus is trapped, Escape closes it). */
export function Dialog({
  title,
  onClose,
  children,
  wide,
}: {
  title: string
  onClose(): void
  children: ReactNode
  wide?: boolean
}) {
  const ref = useRef<HTMLDialogElement>(null)
  const titleId = useId()
  useEffect(() => {
    const dialog = ref.current
    if (dialog && !dialog.open) dialog.showModal()
    return () => dialog?.close()
  }, [])
  return (
    <dialog
      ref={ref}
      aria-labelledby={titleId}
      className={wide ? 'wide' : undefined}
      onCancel={(e) => {
        e.preventDefault()
        onClose()
      }}
    >
      <h2 id={titleId}>{title}</h2>
      {children}
    </dialog>
  )
}

/**
 * A confirmation that names what will be lost. With `typeToConfirm`, the user must type that text
 * before the destructive button works (deleting a trust domain).
 */
export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  onConfirm,
  onClose,
  pending,
  typeToConfirm,
  typed,
  onTyped,
}: {
  title: string
  children: ReactNode
  confirmLabel: string
  onConfirm(): void
  onClose(): void
  pending?: boolean
  typeToConfirm?: string
  typed?: string
  onTyped?(v: string): void
}) {
  const inputId = useId()
  const ready = typeToConfirm === undefined || typed === typeToConfirm
  return (
    <Dialog title={title} onClose={onClose}>
      {children}
      {typeToConfirm !== undefined && (
        <p>
          <label htmlFor={inputId}>
            Type <strong>{typeToConfirm}</strong> to confirm
          </label>
          <input
            id={inputId}
            value={typed ?? ''}
            onChange={(e) => onTyped?.(e.target.value)}
            autoComplete="off"
            spellCheck={false}
          />
        </p>
      )}
      <div className="actions">
        <button type="button" onClick={onClose}>
          Cancel
        </button>
        <button type="button" className="danger" disabled={!ready || pending} onClick={onConfirm}>
          {pending ? 'Working…' : confirmLabel}
        </button>
      </div>
    </Dialog>
  )
}
