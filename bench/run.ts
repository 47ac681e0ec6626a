// `npm run bench`: every benchmark, each figure beside a reference measured in the same run.
// Prints numbers; never fails on one.

const benches = process.argv.slice(2)
const all: Record<string, () => Promise<unknown>> = {
  'x509-issuance': () => import('./x509-issuance.ts').then((m) => m.run()),
  agents: () => import('./agents.ts').then((m) => m.run()),
  'workload-api': () => import('./workload-api.ts').then((m) => m.run()),
}
for (const [name, run] of Object.entries(all)) {
  if (benches.length && !benches.includes(name)) continue
  console.log(`\n== ${name} ==`)
  await run()
}
