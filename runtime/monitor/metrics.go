package monitor

import "github.com/prometheus/client_golang/prometheus"

// sandboxLabels are on every per-sandbox series: the pod's names are ""
// for a sandbox CRI did not make.
var sandboxLabels = []string{"sandbox_id", "pod_name", "pod_namespace", "pod_uid"}

func with(extra ...string) []string {
	return append(append([]string{}, sandboxLabels...), extra...)
}

func desc(name, help string, labels []string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// Helper names as the helper label gives them (the pid files' names map
// onto these in helperName).
const (
	helperVMM       = "vmm"
	helperVirtiofsd = "virtiofsd"
	helperVsock     = "vsock"
	helperKeeper    = "keeper"
	helperShim      = "shim"
)

// Start modes as the start_mode label gives them (runtime/sandbox's).
const (
	sandboxStartCold = "cold"
	sandboxStartWarm = "warm"
)

// Scrape sources as the source label gives them.
const (
	sourceHost       = "host"
	sourceCgroup     = "cgroup"
	sourceGuest      = "guest"
	sourceContainers = "containers"
	sourceShim       = "shim"
	sourceJournal    = "journal" // state_dir's start journal, for the monitor's failures only
)

var (
	// Sandbox.
	descInfo = desc("veil_sandbox_info",
		"A sandbox under state_dir, always 1; hypervisor and start_mode (warm: from the pool, cold: booted for it) as labels.",
		with("hypervisor", "start_mode"))
	descStartTime = desc("veil_sandbox_start_time_seconds",
		"When the sandbox's VM was launched, in seconds since the epoch.", with())
	descScrapeOK = desc("veil_sandbox_scrape_success",
		"1 if the monitor read this part (source) of the sandbox at this scrape, 0 if it failed or ran out of time.",
		with("source"))
	descScrapeDuration = desc("veil_sandbox_scrape_duration_seconds",
		"How long gathering this sandbox took at this scrape (the timeout when it ran out).", with())

	// Host helpers.
	descHelperRSS = desc("veil_helper_resident_memory_bytes",
		"Resident memory (VmRSS) of a host helper process of the sandbox.", with("helper"))
	descHelperCPU = desc("veil_helper_cpu_seconds_total",
		"CPU time of a host helper process of the sandbox, by mode (user, system).", with("helper", "mode"))
	descHelperThreads = desc("veil_helper_threads",
		"Threads of a host helper process of the sandbox.", with("helper"))
	descHelperFDs = desc("veil_helper_open_fds",
		"Open file descriptors of a host helper process of the sandbox.", with("helper"))

	// Sandbox cgroup: everything the host charges the pod (VM, helpers).
	descCgroupMemory = desc("veil_sandbox_cgroup_memory_bytes",
		"Memory charged to the sandbox cgroup: the guest's memory plus the helpers' overhead.", with())
	descCgroupCPU = desc("veil_sandbox_cgroup_cpu_seconds_total",
		"CPU time charged to the sandbox cgroup.", with())
	descCgroupThrottled = desc("veil_sandbox_cgroup_cpu_throttled_periods_total",
		"CFS periods in which the sandbox cgroup ran out of its CPU quota.", with())
	descCgroupPids = desc("veil_sandbox_cgroup_tasks",
		"Tasks (threads) in the sandbox cgroup.", with())

	// Guest.
	descGuestMemTotal = desc("veil_guest_memory_total_bytes",
		"The guest's memory (MemTotal: the VM's size less what the guest kernel reserves).", with())
	descGuestMemAvailable = desc("veil_guest_memory_available_bytes",
		"The guest's available memory (MemAvailable).", with())
	descGuestMemContainers = desc("veil_guest_memory_containers_bytes",
		"Memory used by the sandbox's containers together (their cgroups' memory.current).", with())
	descGuestCPU = desc("veil_guest_cpu_seconds_total",
		"The guest's CPU time over all its vCPUs, by mode.", with("mode"))
	descGuestCPUs = desc("veil_guest_cpus_online",
		"The guest's online vCPUs.", with())
	descGuestLoad1 = desc("veil_guest_load1",
		"The guest's 1-minute load average.", with())
	descGuestLoad5 = desc("veil_guest_load5",
		"The guest's 5-minute load average.", with())
	descGuestLoad15 = desc("veil_guest_load15",
		"The guest's 15-minute load average.", with())
	descGuestProcesses = desc("veil_guest_processes",
		"Processes in the guest.", with())
	descGuestTasks = desc("veil_guest_tasks",
		"Tasks (threads) in the guest, by state: running (runnable now) or all.", with("state"))
	descGuestUptime = desc("veil_guest_uptime_seconds",
		"Seconds since the guest kernel started.", with())

	// Containers (their cgroups in the guest).
	descContainerCPU = desc("veil_container_cpu_seconds_total",
		"CPU time of a container's processes, by mode (user, system).", with("container_id", "mode"))
	descContainerMemory = desc("veil_container_memory_bytes",
		"Memory used by a container (memory.current).", with("container_id"))
	descContainerMemoryLimit = desc("veil_container_memory_limit_bytes",
		"A container's memory limit (memory.max); absent when it has none.", with("container_id"))
	descContainerOOM = desc("veil_container_oom_events_total",
		"Times a container's cgroup hit its memory limit and the OOM killer was invoked.", with("container_id"))
	descContainerOOMKills = desc("veil_container_oom_kills_total",
		"Processes of a container killed by the OOM killer.", with("container_id"))
	descContainerPids = desc("veil_container_tasks",
		"Tasks (threads) of a container (pids.current).", with("container_id"))

	// The shim's telemetry.
	descAgentRPC = desc("veil_agent_rpc_duration_seconds",
		"Requests the shim made to the sandbox's agent, by method, and how long each took (WaitProcess, which lasts as long as a process, left out).", with("method"))
	descAgentRPCErrors = desc("veil_agent_rpc_errors_total",
		"Requests to the sandbox's agent that failed, by method.", with("method"))
	descStdio = desc("veil_stdio_bytes_total",
		"Bytes the shim copied between the host and the sandbox's processes, by stream (stdin, stdout, stderr).", with("stream"))

	// The monitor itself, for this scrape.
	descSandboxes = desc("veil_monitor_sandboxes",
		"Sandboxes the monitor found under state_dir at this scrape.", nil)
)

// allDescs are every per-scrape description, for Describe.
var allDescs = []*prometheus.Desc{
	descInfo, descStartTime, descScrapeOK, descScrapeDuration,
	descHelperRSS, descHelperCPU, descHelperThreads, descHelperFDs,
	descCgroupMemory, descCgroupCPU, descCgroupThrottled, descCgroupPids,
	descGuestMemTotal, descGuestMemAvailable, descGuestMemContainers, descGuestCPU, descGuestCPUs,
	descGuestLoad1, descGuestLoad5, descGuestLoad15, descGuestProcesses, descGuestTasks, descGuestUptime,
	descContainerCPU, descContainerMemory, descContainerMemoryLimit, descContainerOOM, descContainerOOMKills, descContainerPids,
	descAgentRPC, descAgentRPCErrors, descStdio,
	descSandboxes,
}
