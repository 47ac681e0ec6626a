// The k8s workload attestor: pod and container from cgroup files (v1 and v2, each driver and runtime),
// then selectors from a recorded kubelet pod list served over a real local HTTP server.

import { readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import t from 'tap'
import { combineAttestors } from '../../agents/workload/attestor.ts'
import { podContainerFromCgroup } from '../../agents/workload/cgroup.ts'
import { K8sAttestor } from '../../agents/workload/k8s.ts'
import { HttpKubeletClient, type PodList } from '../../agents/workload/kubelet.ts'
import type { ProcessTable } from '../../agents/workload/process-table.ts'
import { ManualClock } from '../../services/clock.ts'
import { openTempDir } from './helpers.ts'

const WEB_POD = '2c48913c-b29f-11e7-9350-020968147796'
const WEB_POD_ = WEB_POD.replaceAll('-', '_')
const WEB = '9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961'
const INIT = '11aa22bb33cc44dd55ee66ff77889900aabbccddeeff00112233445566778899'
const DNS_POD = '8e5a9c1d-3f2b-4a6e-9d7c-1b0a2f3e4d5c'
const DNS = 'a3c1f4e2b5d6c7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2'
const recorded: PodList = JSON.parse(
  readFileSync(new URL('./fixtures/kubelet-pods.json', import.meta.url), 'utf8'),
)

const web = { podUid: WEB_POD, containerId: WEB }

t.test('cgroup files: pod UID and container ID', async (t) => {
  const v1 = (p: string) =>
    ['12:pids', '11:memory', '10:cpu,cpuacct', '9:devices', '1:name=systemd']
      .map((c) => `${c}:${p}`)
      .join('\n')
  const samples: Array<[string, string, { podUid: string; containerId: string } | undefined]> = [
    ['v1 cgroupfs, burstable', v1(`/kubepods/burstable/pod${WEB_POD}/${WEB}`), web],
    ['v1 cgroupfs, guaranteed', v1(`/kubepods/pod${WEB_POD}/${WEB}`), web],
    ['v1 cgroupfs, besteffort', v1(`/kubepods/besteffort/pod${WEB_POD}/${WEB}`), web],
    [
      'v1 systemd, containerd',
      v1(
        `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${WEB_POD_}.slice/cri-containerd-${WEB}.scope`,
      ),
      web,
    ],
    [
      'v1 systemd, docker',
      v1(
        `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${WEB_POD_}.slice/docker-${WEB}.scope`,
      ),
      web,
    ],
    [
      'v2 systemd, containerd',
      `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${WEB_POD_}.slice/cri-containerd-${WEB}.scope\n`,
      web,
    ],
    [
      'v2 systemd, cri-o, guaranteed',
      `0::/kubepods.slice/kubepods-pod${WEB_POD_}.slice/crio-${WEB}.scope\n`,
      web,
    ],
    ['v2 cgroupfs, containerd', `0::/kubepods/besteffort/pod${WEB_POD}/${WEB}\n`, web],
    [
      'v2 kind (kubelet.slice root)',
      `0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${WEB_POD_}.slice/cri-containerd-${WEB}.scope\n`,
      web,
    ],
    [
      'v2, a nested cgroup inside the container',
      `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${WEB_POD_}.slice/cri-containerd-${WEB}.scope/init.scope\n`,
      web,
    ],
    [
      'v1 hybrid: the unified line says nothing, the controllers do',
      `${v1(`/kubepods/burstable/pod${WEB_POD}/${WEB}`)}\n0::/system.slice/containerd.service`,
      web,
    ],
    ['a host process (v2)', '0::/user.slice/user-1000.slice/session-3.scope\n', undefined],
    ['a host process (v1)', v1('/system.slice/sshd.service'), undefined],
    [
      'a process in a container runtime outside Kubernetes',
      `0::/system.slice/docker-${WEB}.scope\n`,
      undefined,
    ],
    ['a pod cgroup without a container (sandbox level)', `0::/kubepods/burstable/pod${WEB_POD}\n`, undefined],
    [
      'cri-o conmon is not the container',
      `0::/kubepods.slice/kubepods-pod${WEB_POD_}.slice/crio-conmon-${WEB}.scope\n`,
      undefined,
    ],
    [
      'a forged pod path inside a delegated subtree is not a pod',
      `0::/user.slice/user-1000.slice/user@1000.service/kubepods/burstable/pod${WEB_POD}/${WEB}\n`,
      undefined,
    ],
    ['empty', '', undefined],
  ]
  for (const [name, text, expected] of samples) t.same(podContainerFromCgroup(text), expected, name)
  t.throws(
    () =>
      podContainerFromCgroup(
        `12:pids:/kubepods/pod${WEB_POD}/${WEB}\n11:memory:/kubepods/pod${DNS_POD}/${DNS}`,
      ),
    /hierarchies disagree/,
  )
})

function fakeProcesses(cgroups: Record<number, string>): ProcessTable {
  const none = () => {
    throw new Error('not used')
  }
  return {
    startTime: none,
    exeLink: none,
    openExe: none,
    statExe: none,
    cgroup: (pid) => {
      const text = cgroups[pid]
      if (text === undefined) throw Object.assign(new Error(`no process ${pid}`), { code: 'ENOENT' })
      return text
    },
  }
}

/** A local kubelet stand-in serving `current()` on GET /pods; records each request's headers. */
async function fakeKubelet(t: { teardown(fn: () => void): void }, current: () => unknown) {
  const requests: http.IncomingHttpHeaders[] = []
  const server = http.createServer((req, res) => {
    requests.push(req.headers)
    if (req.url !== '/pods') {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(current()))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/pods`, requests }
}

const cgroupOf = (pod: string, cid: string) =>
  `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${pod.replaceAll('-', '_')}.slice/cri-containerd-${cid}.scope\n`

t.test('selectors from the recorded pod list, over HTTP', async (t) => {
  const dir = openTempDir(t)
  const tokenFile = path.join(dir, 'token')
  writeFileSync(tokenFile, 'token-one\n')
  const kubelet = await fakeKubelet(t, () => recorded)
  const client = new HttpKubeletClient({ url: kubelet.url, tokenFile })
  t.teardown(() => client.close())
  const attestor = new K8sAttestor({
    kubelet: client,
    processes: fakeProcesses({
      100: cgroupOf(WEB_POD, WEB),
      200: cgroupOf(WEB_POD, INIT),
      300: '0::/init.scope\n',
    }),
    clock: new ManualClock(),
  })
  const selectors = await attestor.attest({ pid: 100 })
  t.ok(selectors.every((s) => s.type === 'k8s'))
  t.same(
    selectors.map((s) => s.value),
    [
      'ns:prod',
      'sa:web',
      'pod-name:web-7d9f8b6c5-x2k4p',
      `pod-uid:${WEB_POD}`,
      'pod-label:app:web',
      'pod-label:app.kubernetes.io/part-of:shop',
      'pod-label:pod-template-hash:7d9f8b6c5',
      'container-name:web',
      'container-image:nginx:1.25',
      'container-image:docker.io/library/nginx:1.25',
      'container-image:docker.io/library/nginx@sha256:6af79ae5de407283dcea8b00d5c37ace95441fd58a8b1d2aa1ed93f5511bb18c',
    ],
  )
  t.equal(kubelet.requests[0]!.authorization, 'Bearer token-one', 'the token file is sent as a bearer token')

  const init = await attestor.attest({ pid: 200 })
  t.ok(
    init.some((s) => s.value === 'container-name:init-db'),
    'init containers are found too',
  )
  t.equal(kubelet.requests.length, 1, 'a fresh pod list is reused')
  t.same(
    await attestor.attest({ pid: 300 }),
    [],
    'a process outside any pod has no k8s selectors, and no kubelet call',
  )
  t.equal(kubelet.requests.length, 1)
})

t.test('cri-o container IDs match too', async (t) => {
  const kubelet = await fakeKubelet(t, () => recorded)
  const attestor = new K8sAttestor({
    kubelet: new HttpKubeletClient({ url: kubelet.url }),
    processes: fakeProcesses({
      7: `0::/kubepods.slice/kubepods-pod${DNS_POD.replaceAll('-', '_')}.slice/crio-${DNS}.scope\n`,
    }),
  })
  const values = (await attestor.attest({ pid: 7 })).map((s) => s.value)
  t.match(values, ['ns:kube-system', 'sa:coredns', 'pod-name:coredns-5d78c9869d-7xq2m'])
  t.ok(values.includes('container-name:coredns'))
})

t.test('a container the kubelet does not list yet: polled, then found', async (t) => {
  const NEW = 'ab'.repeat(32)
  let served = 0
  const withNew = structuredClone(recorded)
  withNew.items[0]!.status!.containerStatuses!.push({
    name: 'late',
    image: 'late:1',
    imageID: 'late@sha256:00',
    containerID: `containerd://${NEW}`,
  })
  const kubelet = await fakeKubelet(t, () => (++served < 3 ? recorded : withNew))
  const clock = new ManualClock()
  const sleeps: number[] = []
  const attestor = new K8sAttestor({
    kubelet: new HttpKubeletClient({ url: kubelet.url }),
    processes: fakeProcesses({ 5: cgroupOf(WEB_POD, NEW) }),
    clock,
    sleep: async (ms) => {
      sleeps.push(ms)
      clock.advance(ms)
    },
    pollIntervalMs: 250,
  })
  const values = (await attestor.attest({ pid: 5 })).map((s) => s.value)
  t.ok(values.includes('container-name:late'))
  t.equal(kubelet.requests.length, 3, 'asked until the container appeared')
  t.same(sleeps, [250, 250])
})

t.test(
  'a container the kubelet never lists: attestation fails, and so does the whole attestation',
  async (t) => {
    const kubelet = await fakeKubelet(t, () => recorded)
    const k8s = new K8sAttestor({
      kubelet: new HttpKubeletClient({ url: kubelet.url }),
      processes: fakeProcesses({ 9: cgroupOf(WEB_POD, 'cd'.repeat(32)) }),
      sleep: async () => {},
      pollAttempts: 3,
    })
    await t.rejects(k8s.attest({ pid: 9 }), /not in the kubelet's pod list \(asked 3 times\)/)
    t.equal(kubelet.requests.length, 3)
    const unixLike = { attest: async () => [{ type: 'unix', value: 'uid:0' }] }
    await t.rejects(
      combineAttestors({ unix: unixLike, k8s }).attest({ pid: 9, uid: 0, gid: 0 }),
      { code: 'WORKLOAD_ATTESTATION_FAILED', message: /^k8s workload attestation of process 9 failed/ },
      'no partial selectors: a missing k8s selector could slip past a rule that denies by it',
    )
  },
)

t.test('the pod list cache follows the injected clock', async (t) => {
  const kubelet = await fakeKubelet(t, () => recorded)
  const clock = new ManualClock()
  const attestor = new K8sAttestor({
    kubelet: new HttpKubeletClient({ url: kubelet.url }),
    processes: fakeProcesses({ 1: cgroupOf(WEB_POD, WEB) }),
    clock,
    podListMaxAgeMs: 1000,
  })
  await Promise.all([attestor.attest({ pid: 1 }), attestor.attest({ pid: 1 })])
  t.equal(kubelet.requests.length, 1, 'concurrent attestations share one request')
  clock.advance(1000)
  await attestor.attest({ pid: 1 })
  t.equal(kubelet.requests.length, 1)
  clock.advance(1)
  await attestor.attest({ pid: 1 })
  t.equal(kubelet.requests.length, 2, 'an older list is fetched again')
})

t.test('kubelet failures are errors with the URL in them', async (t) => {
  const server = http.createServer((req, res) => {
    if (req.url === '/garbage') res.writeHead(200).end('<html>')
    else res.writeHead(401).end('Unauthorized')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  await t.rejects(new HttpKubeletClient({ url: `${base}/pods` }).podList(), {
    name: 'KubeletError',
    message: /answered 401/,
  })
  await t.rejects(new HttpKubeletClient({ url: `${base}/garbage` }).podList(), {
    message: /sent no pod list/,
  })
  await t.rejects(new HttpKubeletClient({ url: 'http://127.0.0.1:1/pods' }).podList(), {
    name: 'KubeletError',
  })
  t.throws(() => new HttpKubeletClient({ url: 'ftp://x/pods' }), TypeError)
})
