package statedir

import (
	"fmt"
	"path/filepath"

	"github.com/containerd/errdefs"

	"github.com/veil-runtime/veil/agent/api"
)

// Names inside a sandbox directory. Helpers that make their own files
// (the VMM drivers) name them with these constants.
const (
	shareName   = "share"
	sharedName  = "shared"
	stagingName = "staging"

	// VirtiofsdSocket is virtiofsd's vhost-user socket.
	VirtiofsdSocket = "virtiofsd.sock"
	// HelperDir holds the sockets the sandbox's jailed helpers make
	// (the hybrid vsock's, Cloud Hypervisor's API and console). It
	// belongs to the sandbox's jail uid, so the host dials them with
	// DialUnix and never follows a name found in it.
	HelperDir = "helper"
	// VsockSocket is the hybrid vsock socket (Cloud Hypervisor's, or
	// vhost-device-vsock's --uds-path).
	VsockSocket = HelperDir + "/uds"
	// ReadySocket is where the hybrid vsock delivers the guest's
	// connection to host port api.ReadyPort (<VsockSocket>_<port>).
	ReadySocket = VsockSocket + "_1026"
	// VhostVsockSocket is the vhost-user socket between QEMU and
	// vhost-device-vsock.
	VhostVsockSocket = HelperDir + "/vhost"
	// ShimSocket is where the pod's shim serves its telemetry (shim/api)
	// to the node's metrics exporter.
	ShimSocket = "shim.sock"
	// QMPSocket is QEMU's QMP socket.
	QMPSocket = "qmp.sock"
	// CHAPISocket is Cloud Hypervisor's API socket.
	CHAPISocket = HelperDir + "/ch-api"
	// CHConsoleSocket is where Cloud Hypervisor serves the guest's
	// serial console (mode Socket); the shim drains it.
	CHConsoleSocket = HelperDir + "/console"
	// ConsoleLog receives the guest's serial console.
	ConsoleLog = "console.log"
	// NetNSFile records the pod's network namespace path.
	NetNSFile = "netns"
	// CgroupFile records the sandbox cgroup's path.
	CgroupFile = "cgroup"
	// PodFile records the Kubernetes pod a sandbox runs (pod.go).
	PodFile = "pod"
	// JailUIDFile records the sandbox's jail uid.
	JailUIDFile = "jail-uid"
	// ParkedNICsFile records a warm pool VM's NICs (taps and guest MACs)
	// while they wait for a pod.
	ParkedNICsFile = "parked-nics"

	// PidSuffix and LogSuffix make a helper's pid and log file names
	// (qemu.pid, virtiofsd.log, ...).
	PidSuffix = ".pid"
	LogSuffix = ".log"
)

// maxSocketPath is the longest path a Unix socket may have: sun_path is
// 108 bytes, one of them the terminating NUL.
const maxSocketPath = 107

// socketNames are every socket a sandbox directory holds; the longest
// decides which ids fit.
var socketNames = []string{
	VirtiofsdSocket, VhostVsockSocket, QMPSocket, CHAPISocket, CHConsoleSocket,
	ReadySocket, ShimSocket,
}

// Dir is the state directory of one sandbox, or of one pool VM (see
// pool.go). Its zero value is not usable: New, NewPool or Open check the
// id.
type Dir struct {
	// id names the directory: the sandbox id, or the pool VM id of an
	// unclaimed pool directory.
	id string
	// path is the directory itself: <state_dir>/<id>, or
	// <state_dir>/.pool/<vmid>.
	path string
	// pool is the pool VM id of a pool directory ("" for a plain one).
	pool string
	// link is <state_dir>/<id>, the symlink that names a claimed pool
	// directory by sandbox id ("" for a plain or unclaimed directory).
	link string
}

// New returns the directory of sandbox id under stateDir. It applies the
// one id rule (api.ValidateID) and refuses an id whose socket paths would
// not fit in a Unix socket address, naming the limit.
func New(stateDir, id string) (Dir, error) {
	return newDir(stateDir, "sandbox id", id, "")
}

// newDir checks id (as what, in errors) and stateDir and returns the
// directory <stateDir>/<sub>/<id>, refusing it when its longest socket
// path would not fit in a Unix socket address. sub is "" for a sandbox
// directory, PoolDirName for a pool VM's.
func newDir(stateDir, what, id, sub string) (Dir, error) {
	if err := api.ValidateID(what, id); err != nil {
		return Dir{}, err
	}
	if !filepath.IsAbs(stateDir) {
		return Dir{}, fmt.Errorf("state_dir %q is not an absolute path: %w", stateDir, errdefs.ErrInvalidArgument)
	}
	d := Dir{id: id, path: filepath.Join(filepath.Clean(stateDir), sub, id)}
	if sub != "" {
		d.pool = id
	}
	longest := ""
	for _, s := range socketNames {
		if len(s) > len(longest) {
			longest = s
		}
	}
	if p := d.File(longest); len(p) > maxSocketPath {
		return Dir{}, fmt.Errorf("%s %q is too long for state_dir %s: its socket %s would be %d bytes, over the %d a Unix socket path may have (use an id of at most %d characters, or a shorter state_dir): %w",
			what, id, stateDir, longest, len(p), maxSocketPath, len(id)-(len(p)-maxSocketPath), errdefs.ErrInvalidArgument)
	}
	return d, nil
}

// ID is the sandbox id (the pool VM id for a pool directory no sandbox
// claimed yet).
func (d Dir) ID() string { return d.id }

// Path is the directory itself (for a claimed pool directory, the pool
// directory, never the link that names it by sandbox id).
func (d Dir) Path() string { return d.path }

// File is the path of a file the sandbox directory holds directly (one of
// the names above).
func (d Dir) File(name string) string { return filepath.Join(d.path, name) }

// SharedDir is the directory virtiofsd serves (read-only on the host;
// container filesystems appear below it in virtiofsd's mount namespace
// only).
func (d Dir) SharedDir() string { return d.File(sharedName) }

// PidFile is a helper process's pid file.
func (d Dir) PidFile(helper string) string { return HelperPidFile(d.path, helper) }

// HelperPidFile and HelperLogFile are the pid and log files of a helper
// process started for the sandbox directory dir (runtime/proc writes
// them).
func HelperPidFile(dir, helper string) string { return filepath.Join(dir, helper+PidSuffix) }

// HelperLogFile is a helper's log file in the sandbox directory dir.
func HelperLogFile(dir, helper string) string { return filepath.Join(dir, helper+LogSuffix) }

func (d Dir) shareDir() string   { return d.File(shareName) }
func (d Dir) stagingDir() string { return d.File(stagingName) }

// UIDLeaseFile is the lock file that holds jail uid for a running
// sandbox (runtime/jail): a file, not a directory, directly in stateDir,
// with a name no sandbox id can have.
func UIDLeaseFile(stateDir string, uid uint32) string {
	return filepath.Join(stateDir, fmt.Sprintf(".uid-%d", uid))
}
