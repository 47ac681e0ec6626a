// `npm run bench`: every benchmark, each figure beside a reference measured in the same run.
// Prints numbers; never fails on one.
//
//   npm run bench -- [NAME...] [--quick] [--stream-mib=N] [--agent-cpu-prof=DIR]
//
// NAME selects benchmarks (default: all). --quick shortens those that have a quick mode (a smoke run,
// not figures to quote). The proxy benchmark takes --stream-mib (its throughput stream) and
// --agent-cpu-prof (profiles of both agents, written to DIR when they stop).

const args = process.argv.slice(2)
const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const benches = args.filter((a) => !a.startsWith('--'))
const quick = args.includes('--quick')
const streamMiB = Number(flag('stream-mib') ?? 0)
const agentCpuProfDir = flag('agent-cpu-prof')
const all: Record<string, () => Promise<unknown>> = {
  'x509-issuance': () => import('./x509-issuance.ts').then((m) => m.run()),
  agents: () => import('./agents.ts').then((m) => m.run()),
  'workload-api': () => import('./workload-api.ts').then((m) => m.run()),
  broker: () => import('./broker.ts').then((m) => m.run({ quick })),
  proxy: () =>
    import('./proxy.ts').then((m) =>
      m.run({
        quick,
        ...(streamMiB > 0 ? { streamMiB } : {}),
        ...(agentCpuProfDir ? { agentCpuProfDir } : {}),
      }),
    ),
}
for (const [name, run] of Object.entries(all)) {
  if (benches.length && !benches.includes(name)) continue
  console.log(`\n== ${name} ==`)
  await run()
}
