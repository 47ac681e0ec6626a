// The unix workload attestor on real processes: selectors from the kernel, the executable's sha256
// checked against sha256sum, binaries changed by one byte and binaries replaced while they run.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { renameSync, utimesSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { EtcAccounts, parseColonFile } from '../../agents/workload/accounts.ts'
import { ExecutableHasher } from '../../agents/workload/executable-hash.ts'
import { UnixAttestor } from '../../agents/workload/unix.ts'
import type { Selector } from '../../agents/workload-api/identity-source.ts'
import { requireTool } from '../helpers/tools.ts'
import { copyExecutable, copyWithOneByteChanged, openTempDir } from './helpers.ts'

const isRoot = process.getuid?.() === 0
const sleepBin = execFileSync('sh', ['-c', 'readlink -f "$(command -v sleep)"'], { encoding: 'utf8' }).trim()

function sha256sum(file: string): string {
  requireTool('sha256sum', 'apt-get install coreutils')
  return execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0]!
}

function run(t: { teardown(fn: () => void): void }, bin: string, ids: { uid?: number; gid?: number } = {}) {
  const child: ChildProcess = spawn(bin, ['60'], { stdio: 'ignore', ...ids })
  t.teardown(() => child.kill('SIGKILL'))
  return child
}

function values(selectors: Selector[], key: string): string[] {
  return selectors
    .filter((s) => s.type === 'unix' && s.value.startsWith(`${key}:`))
    .map((s) => s.value.slice(key.length + 1))
}

/** An entry matches when the workload has every one of its selectors. */
function matches(entry: string[], selectors: Selector[]): boolean {
  const have = new Set(selectors.map((s) => `${s.type}:${s.value}`))
  return entry.every((s) => have.has(s))
}

async function started(child: ChildProcess): Promise<void> {
  if (child.pid) return
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', reject)
  })
}

t.test('a real process: uid, gid, user, group, path, and sha256 equal to sha256sum', async (t) => {
  const ids = isRoot ? { uid: 65534, gid: 65534 } : {}
  const child = run(t, sleepBin, ids)
  await started(child)
  const selectors = await new UnixAttestor().attest({
    pid: child.pid!,
    uid: ids.uid ?? process.getuid!(),
    gid: ids.gid ?? process.getgid!(),
  })
  const uid = ids.uid ?? process.getuid!()
  const gid = ids.gid ?? process.getgid!()
  t.same(values(selectors, 'uid'), [String(uid)])
  t.same(values(selectors, 'gid'), [String(gid)])
  t.same(values(selectors, 'user'), [execFileSync('id', ['-nu', String(uid)], { encoding: 'utf8' }).trim()])
  const group = execFileSync('getent', ['group', String(gid)], { encoding: 'utf8' }).split(':')[0]
  t.same(values(selectors, 'group'), [group])
  t.same(values(selectors, 'path'), [sleepBin])
  t.same(values(selectors, 'sha256'), [sha256sum(sleepBin)])
  t.ok(
    selectors.every((s) => s.type === 'unix'),
    'every selector is of type unix, with the value as KEY:VALUE',
  )
})

t.test('one byte changed: a different sha256, so nothing bound to the original', async (t) => {
  const dir = openTempDir(t)
  const original = path.join(dir, 'app-original')
  const changed = path.join(dir, 'app-changed')
  copyExecutable(sleepBin, original)
  copyWithOneByteChanged(sleepBin, changed, 'Pause for NUMBER seconds')
  const a = run(t, original)
  const b = run(t, changed)
  await Promise.all([started(a), started(b)])
  const attestor = new UnixAttestor()
  const me = { uid: process.getuid!(), gid: process.getgid!() }
  const sa = await attestor.attest({ pid: a.pid!, ...me })
  const sb = await attestor.attest({ pid: b.pid!, ...me })
  t.same(values(sa, 'sha256'), [sha256sum(original)])
  t.same(values(sb, 'sha256'), [sha256sum(changed)])
  t.not(values(sa, 'sha256')[0], values(sb, 'sha256')[0])
  const entry = [`unix:uid:${me.uid}`, `unix:sha256:${values(sa, 'sha256')[0]}`]
  t.ok(matches(entry, sa), 'the entry bound to the original matches the original')
  t.notOk(matches(entry, sb), 'and not the copy with one byte changed')
})

t.test('a binary replaced while it runs: the old process still hashes what it runs', async (t) => {
  const dir = openTempDir(t)
  const app = path.join(dir, 'app')
  copyExecutable(sleepBin, app)
  const before = sha256sum(app)
  const old = run(t, app)
  await started(old)
  // Package managers replace a running binary by rename; writing over it in place fails (ETXTBSY).
  copyWithOneByteChanged(sleepBin, `${app}.new`, 'Pause for NUMBER seconds')
  renameSync(`${app}.new`, app)
  const after = sha256sum(app)
  t.not(before, after)
  const fresh = run(t, app)
  await started(fresh)
  const attestor = new UnixAttestor()
  const me = { uid: process.getuid!(), gid: process.getgid!() }
  const oldSelectors = await attestor.attest({ pid: old.pid!, ...me })
  const freshSelectors = await attestor.attest({ pid: fresh.pid!, ...me })
  t.same(values(oldSelectors, 'sha256'), [before], 'the old process: the hash of the file it runs')
  t.same(values(oldSelectors, 'path'), [app], 'and the path it was started from')
  t.same(values(freshSelectors, 'sha256'), [after], 'a new process: the hash of the new file')
  t.same(values(freshSelectors, 'path'), [app])
})

t.test('the hashing limit: over it, no sha256 selector and a log line', async (t) => {
  const child = run(t, sleepBin)
  await started(child)
  const warnings: Array<{ obj: any; msg: string }> = []
  const log = { info() {}, warn: (obj: object, msg: string) => warnings.push({ obj, msg }) }
  const attestor = new UnixAttestor({ maxHashBytes: 1000, log })
  const me = { uid: process.getuid!(), gid: process.getgid!() }
  const selectors = await attestor.attest({ pid: child.pid!, ...me })
  t.same(values(selectors, 'sha256'), [], 'no sha256 selector')
  t.same(values(selectors, 'path'), [sleepBin], 'the other selectors are there')
  t.equal(warnings.length, 1)
  t.match(warnings[0]!.msg, /larger than the hashing limit/)
  t.match(warnings[0]!.obj, { pid: child.pid, path: sleepBin, maxBytes: 1000 })
  await attestor.attest({ pid: child.pid!, ...me })
  t.equal(warnings.length, 1, 'one line per executable, not one per call')
})

t.test('hashes are cached by device, inode, size, mtime and ctime', async (t) => {
  const dir = openTempDir(t)
  const app = path.join(dir, 'app')
  copyExecutable(sleepBin, app)
  const hasher = new ExecutableHasher()
  const attestor = new UnixAttestor({ hasher })
  const me = { uid: process.getuid!(), gid: process.getgid!() }
  const a = run(t, app)
  const b = run(t, app)
  await Promise.all([started(a), started(b)])
  const [sa, sb] = await Promise.all([
    attestor.attest({ pid: a.pid!, ...me }),
    attestor.attest({ pid: b.pid!, ...me }),
  ])
  t.same(values(sa, 'sha256'), values(sb, 'sha256'))
  t.equal(hasher.hashed, 1, 'two processes of one file, attested at once: hashed once')
  await attestor.attest({ pid: a.pid!, ...me })
  t.equal(hasher.hashed, 1, 'and not again later')
  // A running binary cannot be rewritten, but its times can: a changed key means a fresh hash.
  utimesSync(app, new Date(2000, 0, 1), new Date(2000, 0, 1))
  const again = await attestor.attest({ pid: a.pid!, ...me })
  t.equal(hasher.hashed, 2, 'a file whose times changed is hashed again')
  t.same(values(again, 'sha256'), values(sa, 'sha256'))
})

t.test('a process that is gone cannot be attested', async (t) => {
  const child = spawn(sleepBin, ['0'], { stdio: 'ignore' })
  await new Promise((r) => child.once('exit', r))
  await t.rejects(new UnixAttestor().attest({ pid: child.pid!, uid: 0, gid: 0 }), { code: 'ENOENT' })
})

t.test('user and group names from passwd and group files', async (t) => {
  const table = parseColonFile(
    [
      '# comment',
      'root:x:0:0:root:/root:/bin/bash',
      'alias:x:0:0::/:/bin/sh',
      'web:x:1000:1000::/:/bin/sh',
      'bad',
    ].join('\n'),
  )
  t.equal(table.get(0), 'root', 'the first name for an id wins')
  t.equal(table.get(1000), 'web')
  t.equal(table.size, 2)
  const dir = openTempDir(t)
  writeFileSync(path.join(dir, 'passwd'), 'svc:x:4242:4242::/:/bin/sh\n')
  writeFileSync(path.join(dir, 'group'), 'svcgroup:x:4343:\n')
  const accounts = new EtcAccounts(dir)
  t.equal(accounts.userName(4242), 'svc')
  t.equal(accounts.groupName(4343), 'svcgroup')
  t.equal(accounts.userName(1), undefined)
  writeFileSync(path.join(dir, 'passwd'), 'renamed:x:4242:4242::/:/bin/sh\n')
  t.equal(accounts.userName(4242), 'renamed', 'a changed file is read again')
})
