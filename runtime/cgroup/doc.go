// Package cgroup owns the sandbox cgroup: the one cgroup that holds every
// host helper of a sandbox (the VMM, virtiofsd, vhost-device-vsock), so
// that the VM is accounted and limited as one thing.
//
// Where it lives (Path): under CRI, at the sandbox (pause) container's
// linux.cgroupsPath, that is below the pod's cgroup parent, so the
// kubelet's pod cgroup, sized with the RuntimeClass overhead, holds the
// VM; the systemd form "slice:prefix:name" is expanded to the directory
// runc would use ("<expanded slice>/<prefix>-<name>.scope"). Without CRI
// it is <parent>/<sandbox id>. The path is always a clean absolute
// cgroup path below the root.
//
// What it limits (Limits): memory (the guest's RAM plus a configured
// overhead), tasks, and CPU time as a CFS quota over a 100 ms period (the
// VM's vCPUs, reserve ones included). Limits are hierarchical, so nothing
// in the cgroup ever gets more than an ancestor allows: a guest that
// onlines its spare vCPUs under CRI still gets no more than the pod's
// quota.
//
// Cgroup v1 and v2 are both handled by github.com/opencontainers/cgroups,
// the library runc uses, through its cgroupfs drivers (fs for v1, fs2 for
// v2; never its systemd driver, the path being a cgroupfs one):
//
//   - v2: one directory below /sys/fs/cgroup, with the memory, cpu and
//     pids controllers enabled down to it.
//   - v1 (hybrid hosts too): one directory of the same path in every
//     mounted hierarchy but devices (cpu and cpuacct may be separate
//     mounts, as on our hosts), plus name=systemd and, on a hybrid host,
//     the cgroup2 tree at /sys/fs/cgroup/unified. The memory, cpu, cpuacct
//     and pids hierarchies are required. The devices hierarchy is left
//     alone: given no device rules, the library would write a deny-all
//     list there (when github.com/opencontainers/cgroups/devices is linked
//     in, as it is in the shim), and the helpers' device access is the
//     jail's business.
//
// Differences the package absorbs:
//
//   - v1 refuses (EINVAL) a child cpu.cfs_quota_us above an ancestor's,
//     and refuses lowering an ancestor below a child's; v2 silently takes
//     the minimum. So on v1, when an ancestor (the pod) already allows no
//     more than the requested CPUs, the sandbox cgroup gets no quota of its
//     own: the ancestor bounds it, and the kubelet can still resize the
//     pod.
//   - v1's memory controller charges a cgroup's usage to its ancestors only
//     with memory.use_hierarchy=1 (always so since Linux 5.11); Create
//     refuses a cgroup where it reads 0, as the pod's limit would not hold
//     the VM. memory.memsw.* (v1) and memory.swap.max (v2) are left alone
//     but for "no limit", which the library writes to both.
//   - A process moved in (Add writes cgroup.procs, so the whole thread
//     group moves) is charged for what it allocates from then on, on both
//     versions; pages it touched before stay charged where they were (the
//     jail stage is placed before it execs the helper, so in practice the
//     helper is charged for everything).
//
// Delete kills what is left inside with SIGKILL through pidfds (a pid read
// from cgroup.procs is signalled only if it is still listed after its pidfd
// was opened, so a recycled pid is never hit), preceded by cgroup.kill where
// a cgroup2 directory exists (v2, or a hybrid host's unified tree), waits
// until every hierarchy is empty, then removes the directories.
package cgroup
