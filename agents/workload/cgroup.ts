// Which pod and container a process runs in, from /proc/<pid>/cgroup: the cgroup paths kubelet creates
// with the cgroupfs and systemd drivers (cgroup v1 and v2) for containerd, CRI-O and Docker.
//
// The kubepods hierarchy must start at the cgroup root (or under kubelet's own root, as in kind). A
// process in a delegated subtree (a systemd user session, a rootless container) can create cgroups
// with any name below its own, so a pod path found anywhere else would let it claim another pod.

export interface PodContainer {
  podUid: string
  containerId: string
}

const UID = '([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})'
const QOS = '(?:besteffort|burstable)'

// cgroupfs driver: /kubepods[/QOS]/pod<uid>/<cid>
const CGROUPFS = {
  root: /^kubepods$/,
  qos: new RegExp(`^${QOS}$`),
  pod: new RegExp(`^pod${UID}$`),
  container: /^([0-9a-f]{64})$/,
}
// systemd driver: /kubepods.slice[/kubepods-QOS.slice]/kubepods[-QOS]-pod<uid_>.slice/<runtime>-<cid>.scope
// (kind prefixes every slice with "kubelet-").
const SYSTEMD = {
  root: /^(?:kubelet-)?kubepods\.slice$/,
  qos: new RegExp(`^(?:kubelet-)?kubepods-${QOS}\\.slice$`),
  pod: new RegExp(`^(?:kubelet-)?kubepods(?:-${QOS})?-pod${UID}\\.slice$`),
  container: /^(?:cri-containerd|crio|docker|containerd)-([0-9a-f]{64})\.scope$/,
}
const KUBELET_ROOTS = new Set(['kubelet', 'kubelet.slice'])

function parsePath(cgroupPath: string): PodContainer | undefined {
  const segments = cgroupPath.split('/').filter((s) => s.length > 0)
  const i = KUBELET_ROOTS.has(segments[0] ?? '') ? 1 : 0
  for (const driver of [CGROUPFS, SYSTEMD]) {
    let j = i
    if (!driver.root.test(segments[j] ?? '')) continue
    j++
    if (driver.qos.test(segments[j] ?? '')) j++
    const pod = driver.pod.exec(segments[j] ?? '')
    const container = driver.container.exec(segments[j + 1] ?? '')
    // Segments below the container's own cgroup are the container's business (nested cgroups).
    if (pod && container) return { podUid: pod[1]!.replaceAll('_', '-'), containerId: container[1]! }
  }
  return undefined
}

/**
 * The pod UID and container ID in a /proc/<pid>/cgroup file, or undefined for a process outside any pod.
 * Throws when two hierarchies name different containers (nothing legitimate does that).
 */
export function podContainerFromCgroup(text: string): PodContainer | undefined {
  let found: PodContainer | undefined
  for (const line of text.split('\n')) {
    // hierarchy-ID:controller-list:path; the path itself may contain ':'.
    const first = line.indexOf(':')
    const second = first < 0 ? -1 : line.indexOf(':', first + 1)
    if (second < 0) continue
    const parsed = parsePath(line.slice(second + 1))
    if (!parsed) continue
    if (found && (found.podUid !== parsed.podUid || found.containerId !== parsed.containerId)) {
      throw new Error(
        `cgroup hierarchies disagree about the container: pod ${found.podUid}/${found.containerId} vs ${parsed.podUid}/${parsed.containerId}`,
      )
    }
    found = parsed
  }
  return found
}
