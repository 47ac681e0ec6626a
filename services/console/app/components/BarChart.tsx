// A small SVG bar chart (no chart library: it would cost more than the whole console). The numbers are
// also in a visually hidden table, so screen readers get them.

export function BarChart({
  title,
  bars,
  unit,
}: {
  title: string
  bars: Array<{ label: string; value: number }>
  unit: string
}) {
  const width = 560
  const height = 160
  const pad = { left: 36, right: 8, top: 10, bottom: 24 }
  const max = Math.max(1, ...bars.map((b) => b.value))
  const step = (width - pad.left - pad.right) / Math.max(1, bars.length)
  const scale = (v: number) => ((height - pad.top - pad.bottom) * v) / max
  const ticks = [...new Set([0, Math.round(max / 2), max])]
  return (
    <figure className="chart">
      <svg
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label={`${title}: ${bars.map((b) => `${b.label} ${b.value}`).join(', ')}`}
      >
        {ticks.map((t) => {
          const y = height - pad.bottom - scale(t)
          return (
            <g key={t}>
              <line x1={pad.left} x2={width - pad.right} y1={y} y2={y} className="grid" />
              <text x={pad.left - 6} y={y + 4} textAnchor="end" className="tick">
                {t}
              </text>
            </g>
          )
        })}
        {bars.map((b, i) => {
          const h = scale(b.value)
          const x = pad.left + i * step + 1
          return (
            <g key={b.label}>
              <rect
                x={x}
                y={height - pad.bottom - h}
                width={Math.max(1, step - 2)}
                height={h}
                className="bar"
              >
                <title>{`${b.label}: ${b.value} ${unit}`}</title>
              </rect>
              {i % 4 === 0 && (
                <text x={x + step / 2} y={height - 8} textAnchor="middle" className="tick">
                  {b.label}
                </text>
              )}
            </g>
          )
        })}
      </svg>
      <figcaption>{title}</figcaption>
      <table className="visually-hidden">
        <caption>{title}</caption>
        <thead>
          <tr>
            <th scope="col">Hour</th>
            <th scope="col">{unit}</th>
          </tr>
        </thead>
        <tbody>
          {bars.map((b) => (
            <tr key={b.label}>
              <td>{b.label}</td>
              <td>{b.value}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  )
}
