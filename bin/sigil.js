#!/usr/bin/env node
// The `sigil` command. Sources are TypeScript, loaded through tsx's ESM hooks.
import { register } from 'tsx/esm/api'

register()
await import('../services/cli/main.ts')
