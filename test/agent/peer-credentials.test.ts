// The native addon and the PID-reuse guard, with real child processes on a real Unix socket.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, openSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { peerCred, peerPidfd, pidfdAlive, pidfdOpen } from '../../agents/native/peer-credentials.ts'
import { attestCaller, Caller, CallerGoneError, identifyCaller } from '../../agents/workload/caller.ts'
import {
  closeQuietly,
  type ProcessTable,
  ProcFs,
  parseStartTime,
} from '../../agents/workload/process-table.ts'
import { nodeBinary, openTempDir, waitFor } from './helpers.ts'

const isRoot = process.getuid?.() === 0
const procfs = new ProcFs()

function fdOf(socket: net.Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd
}

/** A server on a temp socket; resolves each accepted connection in order. */
async function socketServer(t: { teardown(fn: () => void): void }) {
  const dir = openTempDir(t)
  const socketPath = path.join(dir, 'peer.sock')
  const accepted: net.Socket[] = []
  const server = net.createServer((s) => {
    s.on('error', () => {})
    accepted.push(s)
  })
  await new Promise<void>((resolve) => server.listen(socketPath, resolve))
  chmodSync(socketPath, 0o666)
  t.teardown(() => {
    for (const s of accepted) s.destroy()
    server.close()
  })
  return { socketPath, accepted }
}

/** A child process that connects to `socketPath` and stays until killed. */
function connectingChild(socketPath: string, ids: { uid?: number; gid?: number } = {}) {
  // The child may run as another uid, which can neither enter our working directory nor load the test
  // runner's preloads from it (tap adds them to every node it spawns): `env -i` execs node bare, in /.
  const code = `require('net').connect(${JSON.stringify(socketPath)}).on('error', () => {}); setInterval(() => {}, 1000)`
  const child = spawn(
    '/usr/bin/env',
    ['-i', `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`, nodeBinary, '-e', code],
    {
      stdio: 'ignore',
      cwd: '/',
      ...ids,
    },
  )
  return child
}

t.test('peerCred names the connecting child process: its pid, uid and gid', async (t) => {
  const { socketPath, accepted } = await socketServer(t)
  const ids = isRoot ? { uid: 65534, gid: 65534 } : {}
  const child = connectingChild(socketPath, ids)
  t.teardown(() => child.kill('SIGKILL'))
  await waitFor('the child to connect', () => accepted.length === 1)
  const cred = peerCred(fdOf(accepted[0]!))
  t.same(cred, {
    pid: child.pid,
    uid: ids.uid ?? process.getuid!(),
    gid: ids.gid ?? process.getgid!(),
  })
  if (!isRoot) t.comment('not root: the child ran under our own uid and gid')
})

t.test('peerCred refuses what is not a connected Unix socket', async (t) => {
  const file = openSync(fileURLToPath(import.meta.url), 'r')
  t.teardown(() => closeQuietly(file))
  t.throws(() => peerCred(file), { code: 'ENOTSOCK', syscall: 'getsockopt(SO_PEERCRED)' })
  t.throws(() => peerCred(-1 as number), TypeError)
  t.throws(() => peerCred('3' as unknown as number), TypeError)
})

t.test('a pidfd follows the exact process: alive while it runs, not after it exits', async (t) => {
  const { socketPath, accepted } = await socketServer(t)
  const child = connectingChild(socketPath)
  await waitFor('the child to connect', () => accepted.length === 1)
  const fd = fdOf(accepted[0]!)
  // SO_PEERPIDFD where the kernel has it (6.5+), else pidfd_open.
  const fromSocket = peerPidfd(fd)
  const pidfd = fromSocket ?? pidfdOpen(peerCred(fd).pid)
  t.teardown(() => closeQuietly(pidfd))
  t.comment(fromSocket === null ? 'kernel without SO_PEERPIDFD: pidfd_open' : 'SO_PEERPIDFD')
  t.equal(pidfdAlive(pidfd), true)
  child.kill('SIGKILL')
  await once(child, 'exit')
  t.equal(pidfdAlive(pidfd), false)
  t.throws(() => pidfdOpen(child.pid!), { code: 'ESRCH' }, 'no pidfd for a process that is gone')
})

t.test('identifyCaller and the PID-reuse guard', async (t) => {
  const { socketPath, accepted } = await socketServer(t)
  const child = connectingChild(socketPath)
  t.teardown(() => child.kill('SIGKILL'))
  await waitFor('the child to connect', () => accepted.length === 1)
  const caller = identifyCaller(fdOf(accepted[0]!), procfs)
  t.teardown(() => caller.release())
  t.equal(caller.pid, child.pid)
  t.equal(caller.startTime, procfs.startTime(child.pid!))
  t.not(caller.pidfd, null)

  const attestor = { attest: async (c: { pid: number }) => [{ type: 'unix', value: `pid-was:${c.pid}` }] }
  t.same(await attestCaller(attestor, caller, procfs), [{ type: 'unix', value: `pid-was:${child.pid}` }])

  t.test('a different start time under the same pid is another process: refused', async (t) => {
    const impostor = new Caller({ pid: child.pid!, uid: 0, gid: 0 }, '1', null)
    t.throws(() => impostor.verify(procfs), { name: 'CallerGoneError', message: /PID was reused/ })
    await t.rejects(attestCaller(attestor, impostor, procfs), CallerGoneError)
  })

  t.test('a PID reused while attestation runs is caught afterwards', async (t) => {
    // The process table seam: the start time changes between the checks before and after attestation.
    let reads = 0
    const reused: ProcessTable = {
      ...procfs,
      startTime: () => (reads++ === 0 ? '1000' : '2000'),
      exeLink: (pid) => procfs.exeLink(pid),
      openExe: (pid) => procfs.openExe(pid),
      statExe: (pid) => procfs.statExe(pid),
      cgroup: (pid) => procfs.cgroup(pid),
    }
    const c = new Caller({ pid: child.pid!, uid: 0, gid: 0 }, '1000', null)
    let attested = false
    const slow = {
      attest: async () => {
        attested = true
        return [{ type: 'unix', value: 'uid:0' }]
      },
    }
    await t.rejects(attestCaller(slow, c, reused), { name: 'CallerGoneError', message: /PID was reused/ })
    t.ok(attested, 'the attestor ran, and its answer was thrown away')
  })

  t.test('a caller that exits is refused, even if an attestor failed first', async (t) => {
    const failing = { attest: async () => Promise.reject(new Error('/proc/N/exe: ENOENT')) }
    child.kill('SIGKILL')
    await once(child, 'exit')
    t.throws(() => caller.verify(procfs), { name: 'CallerGoneError', message: /has exited/ })
    await t.rejects(attestCaller(failing, caller, procfs), CallerGoneError)
  })

  t.test('a released caller never verifies again', async (t) => {
    const c = new Caller(
      { pid: process.pid, uid: 0, gid: 0 },
      procfs.startTime(process.pid),
      pidfdOpen(process.pid),
    )
    c.verify(procfs)
    c.release()
    t.equal(c.pidfd, null)
    t.throws(() => c.verify(procfs), { name: 'CallerGoneError', message: /connection .* is closed/ })
  })
})

t.test('parseStartTime copes with command names holding spaces and parentheses', async (t) => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3))
  t.equal(parseStartTime(`42 (we) ird (name) ${fields.join(' ')}`), '22')
  t.throws(() => parseStartTime('42 (x) R 1'), /no start time/)
})
