#!/usr/bin/env node
// The `sigil` command. It runs the JavaScript that `npm run build` compiles into dist/ while that build
// is current, and otherwise the TypeScript sources through tsx's ESM hooks: a source saved after the
// build (dist/.built) sends every run back to the sources, so an edit is never hidden by an old build.
// The compiled code needs no loader thread; a long-running agent keeps about 35 MiB less resident.
// SIGIL_FROM_SOURCE=1 always runs the sources.
import { readdirSync, statSync } from 'node:fs'
import path from 'node:path'

const root = path.resolve(import.meta.dirname, '..')

function buildIsCurrent() {
  if (process.env.SIGIL_FROM_SOURCE === '1') return false
  let built
  try {
    built = statSync(path.join(root, 'dist/.built')).mtimeMs
  } catch {
    return false
  }
  for (const top of ['agents', 'services']) {
    for (const file of readdirSync(path.join(root, top), { recursive: true })) {
      if (!file.endsWith('.ts') || file.startsWith('console/app/') || file.includes('node_modules')) continue
      if (statSync(path.join(root, top, file)).mtimeMs > built) return false
    }
  }
  return true
}

if (buildIsCurrent()) {
  await import('../dist/services/cli/main.js')
} else {
  const { register } = await import('tsx/esm/api')
  register()
  await import('../services/cli/main.ts')
}
