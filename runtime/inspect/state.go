package inspect

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/veil-runtime/veil/runtime/hypervisor/registry"
	"github.com/veil-runtime/veil/runtime/proc"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// Sandbox states derived from the VMM's pid.
const (
	StateRunning = "running"
	StateDead    = "dead"
	StateUnknown = "unknown" // no VMM pid file
)

// Reader reads sandbox state directories and host processes.
type Reader struct {
	// StateDir holds one directory per sandbox (config state_dir).
	StateDir string
	// ProcRoot is the host's /proc (a fake tree in tests).
	ProcRoot string
}

// Helper is a host process of a sandbox, from its pid file.
type Helper struct {
	// Name is the pid file's name without .pid (qemu, virtiofsd, ...).
	Name string `json:"name"`
	// Pid is the recorded pid; 0 when the file is unreadable.
	Pid int `json:"pid"`
	// Alive reports that the pid runs a program naming the sandbox
	// directory (a recycled pid does not count).
	Alive bool `json:"alive"`
	// PidFile is the pid file's path.
	PidFile string `json:"pid_file"`
}

// SandboxInfo is what the state directory tells about one sandbox.
type SandboxInfo struct {
	ID string `json:"id"`
	// Dir is the sandbox's directory: for a sandbox that claimed a warm
	// pool VM, the pool VM's (<state_dir>/.pool/<vmid>).
	Dir string `json:"dir"`
	// PoolVM is the id of the warm pool VM the sandbox claimed, "" when
	// it booted its own.
	PoolVM string `json:"pool_vm,omitempty"`
	// Hypervisor is the VMM that runs it (from its pid file).
	Hypervisor string `json:"hypervisor"`
	// VMMPid is the VMM's pid, 0 when unknown.
	VMMPid int `json:"vmm_pid"`
	// State is running, dead or unknown.
	State string `json:"state"`
	// Created is when the VMM was launched (its pid file was written).
	Created time.Time `json:"created"`
	// Helpers are the processes named by the *.pid files, by name.
	Helpers []Helper `json:"helpers"`
	// Sockets are the Unix sockets present in the directory.
	Sockets []string `json:"sockets"`
	// Logs are the *.log files in the directory.
	Logs []string `json:"logs"`
	// ConsoleLog is the guest console's log.
	ConsoleLog string `json:"console_log"`
	// Containers are the directories under shared/.
	Containers []string `json:"containers"`
	// Pod names the Kubernetes pod (zero for a sandbox CRI did not make,
	// or whose record is unreadable).
	Pod statedir.Pod `json:"pod"`
	// Cgroup is the sandbox cgroup's path, "" without one.
	Cgroup string `json:"cgroup,omitempty"`
	// Kernel and Initrd are the guest images the config names.
	Kernel string `json:"kernel,omitempty"`
	Initrd string `json:"initrd,omitempty"`
}

// ErrNotFound reports a sandbox id without a state directory.
var ErrNotFound = errors.New("sandbox not found")

// List reads every sandbox, sorted by id: each directory in the state
// directory, and each link there that names a pool VM's directory a
// sandbox claimed (statedir.Open). Dot entries (the warm pool's .pool,
// uid leases) are no sandboxes, nor are links Open refuses or whose pool
// directory is gone. A missing state directory means no sandboxes.
func (r *Reader) List() ([]SandboxInfo, error) {
	ents, err := os.ReadDir(r.StateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	var out []SandboxInfo
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		switch {
		case e.IsDir():
		case e.Type()&os.ModeSymlink != 0:
			if d, err := statedir.Open(r.StateDir, e.Name()); err != nil || !d.Pool() || !statedir.Exists(d) {
				continue
			}
		default:
			continue
		}
		sb, err := r.read(e.Name())
		if errors.Is(err, ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			continue // removed since ReadDir
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Get reads sandbox id.
func (r *Reader) Get(id string) (SandboxInfo, error) {
	return r.read(id)
}

// Dir is the state directory of sandbox id (for a sandbox that claimed a
// pool VM, the pool VM's directory, not the link that names it).
func (r *Reader) Dir(id string) (string, error) {
	d, err := r.layout(id)
	if err != nil {
		return "", err
	}
	return d.Path(), nil
}

// layout checks id and returns its directory (statedir.Open: a link to a
// pool VM's directory is followed only as statedir allows), which must
// exist.
func (r *Reader) layout(id string) (statedir.Dir, error) {
	d, err := statedir.Open(r.StateDir, id)
	if err != nil {
		return statedir.Dir{}, err
	}
	if st, err := os.Lstat(d.Path()); err != nil || !st.IsDir() {
		return statedir.Dir{}, fmt.Errorf("sandbox %s: no state directory %s: %w", id, d.Path(), ErrNotFound)
	}
	return d, nil
}

func (r *Reader) read(id string) (SandboxInfo, error) {
	d, err := r.layout(id)
	if err != nil {
		return SandboxInfo{}, err
	}
	dir := d.Path()
	sb := SandboxInfo{ID: id, Dir: dir, PoolVM: d.PoolID(), State: StateUnknown, ConsoleLog: d.File(statedir.ConsoleLog),
		Helpers: []Helper{}, Sockets: []string{}, Logs: []string{}, Containers: []string{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return SandboxInfo{}, fmt.Errorf("sandbox %s: %w", id, err)
	}
	var created time.Time
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.Type()&os.ModeSocket != 0:
			sb.Sockets = append(sb.Sockets, p)
		case strings.HasSuffix(e.Name(), statedir.LogSuffix):
			sb.Logs = append(sb.Logs, p)
		case strings.HasSuffix(e.Name(), statedir.PidSuffix) && e.Type().IsRegular():
			h := Helper{Name: strings.TrimSuffix(e.Name(), statedir.PidSuffix), PidFile: p}
			h.Pid = readPid(p)
			h.Alive = h.Pid > 0 && proc.OwnerOf(dir, r.ProcRoot).Owns(h.Pid)
			sb.Helpers = append(sb.Helpers, h)
			if fi, err := e.Info(); err == nil && (created.IsZero() || fi.ModTime().Before(created)) {
				created = fi.ModTime()
			}
		}
	}
	// A VMM's pid file is named after its hypervisor (registry order
	// decides when several are present).
	for _, name := range registry.Names() {
		for _, h := range sb.Helpers {
			if h.Name == name && sb.Hypervisor == "" {
				sb.Hypervisor, sb.VMMPid, sb.State = name, h.Pid, StateDead
				if h.Alive {
					sb.State = StateRunning
				}
			}
		}
	}
	if created.IsZero() {
		if fi, err := os.Stat(dir); err == nil {
			created = fi.ModTime()
		}
	}
	sb.Created = created
	// Both records are the host's own; one it cannot read leaves the
	// field empty rather than hiding the sandbox.
	sb.Pod, _ = statedir.ReadPod(d)
	sb.Cgroup, _ = statedir.CgroupPath(d)
	// The share's root is written by the host only (the guest sees it
	// read-only), so its entries are the containers the shim added.
	if ents, err := os.ReadDir(d.SharedDir()); err == nil {
		for _, e := range ents {
			// Dot directories are not containers (the shim never names one so).
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				sb.Containers = append(sb.Containers, e.Name())
			}
		}
	}
	return sb, nil
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
