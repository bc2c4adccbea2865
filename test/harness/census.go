package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/vishvananda/netns"
)

// Census kinds: everything a sandbox can leave on the host.
const (
	KindProcess = "process"
	KindMount   = "mount"
	KindNetNS   = "netns"
	KindLink    = "link" // network devices (taps) in any named namespace or the host's
	KindCgroup  = "cgroup"
	KindSocket  = "socket" // Unix socket files
	KindFIFO    = "fifo"
	KindState   = "state" // entries of the Veil state_dir
)

// censusProcesses are the names (argv[0] base name or an argument) of the
// processes a sandbox runs on the host.
var censusProcesses = []string{
	"containerd-shim-veil-v2", "qemu-system-", "virtiofsd", "vhost-device-vsock",
	"cloud-hypervisor", "veil-jail",
}

// Census is a snapshot of the host resources a sandbox can leave behind,
// by kind: the leak census every VM test's cleanup compares against a
// snapshot taken before it started (see Since). It is host-wide, not
// per sandbox: a resource that appeared and did not go away is a leak
// whoever made it.
type Census struct {
	items map[string]map[string]bool
	// Errors are the parts that could not be read (reported, not fatal).
	Errors []string
}

// CensusScope names the directories a census walks for state entries,
// sockets and FIFOs.
type CensusScope struct {
	// StateDir is the Veil state_dir: its entries and every socket or
	// FIFO below it are counted.
	StateDir string
	// Dirs are further directories whose sockets and FIFOs are counted
	// (containerd's state and FIFO directories).
	Dirs []string
}

// TakeCensus counts the host's sandbox resources now.
func TakeCensus(scope CensusScope) *Census {
	c := &Census{items: map[string]map[string]bool{}}
	c.processes()
	c.mounts()
	c.netns()
	c.cgroups()
	if scope.StateDir != "" {
		c.stateEntries(scope.StateDir)
		c.special(scope.StateDir)
	}
	for _, d := range scope.Dirs {
		c.special(d)
	}
	return c
}

func (c *Census) add(kind, item string) {
	if c.items[kind] == nil {
		c.items[kind] = map[string]bool{}
	}
	c.items[kind][item] = true
}

func (c *Census) fail(format string, args ...any) {
	c.Errors = append(c.Errors, fmt.Sprintf(format, args...))
}

// Counts is the number of items of each kind.
func (c *Census) Counts() map[string]int {
	out := map[string]int{}
	for k, set := range c.items {
		out[k] = len(set)
	}
	return out
}

// Since lists, sorted as "kind: item", what c has that base did not: the
// leaks between the two censuses.
func (c *Census) Since(base *Census) []string {
	var out []string
	for kind, set := range c.items {
		for item := range set {
			if !base.items[kind][item] {
				out = append(out, kind+": "+item)
			}
		}
	}
	sort.Strings(out)
	return out
}

// processes counts the host processes of sandboxes: shims, VMMs and
// helpers, by pid and command line.
func (c *Census) processes() {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		c.fail("read /proc: %v", err)
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if isSandboxProcess(args) {
			c.add(KindProcess, e.Name()+" "+strings.Join(args, " "))
		}
	}
}

func isSandboxProcess(args []string) bool {
	// The warm pool's daemon and keepers: `veil ... pool serve|keep`.
	if filepath.Base(args[0]) == "veil" && slices.Contains(args, "pool") {
		return true
	}
	for i, a := range args {
		if i == 0 {
			a = filepath.Base(a)
		}
		for _, name := range censusProcesses {
			if strings.HasPrefix(filepath.Base(a), name) {
				return true
			}
		}
	}
	return false
}

// mounts counts the host mount namespace's mount points.
func (c *Census) mounts() {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		c.fail("read mountinfo: %v", err)
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			c.add(KindMount, f[4])
		}
	}
}

// netns counts the named network namespaces (/run/netns) and the network
// devices in each and in the host's.
func (c *Census) netns() {
	c.links("host", netns.None())
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		if !os.IsNotExist(err) {
			c.fail("read %s: %v", netnsDir, err)
		}
		return
	}
	for _, e := range entries {
		c.add(KindNetNS, e.Name())
		h, err := netns.GetFromPath(filepath.Join(netnsDir, e.Name()))
		if err != nil {
			continue // being deleted, or not a namespace
		}
		c.links(e.Name(), h)
		_ = h.Close()
	}
}

// links counts the network devices of one namespace (None: the
// caller's).
func (c *Census) links(name string, ns netns.NsHandle) {
	var (
		h   *netlink.Handle
		err error
	)
	if ns == netns.None() {
		h, err = netlink.NewHandle()
	} else {
		h, err = netlink.NewHandleAt(ns)
	}
	if err != nil {
		c.fail("netlink in %s: %v", name, err)
		return
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		c.fail("list links in %s: %v", name, err)
		return
	}
	for _, l := range links {
		c.add(KindLink, name+"/"+l.Attrs().Name)
	}
}

// cgroups counts every cgroup directory of every hierarchy below the
// first level: first-level directories are the parents runtimes share
// and keep (/veil, /k8s.io, /default), as the kubelet keeps /kubepods.
func (c *Census) cgroups() {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		roots = []string{"/sys/fs/cgroup"}
	}
	for _, root := range roots {
		if fi, err := os.Lstat(root); err != nil || !fi.IsDir() {
			continue // symlinks such as cpu -> cpu,cpuacct
		}
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil //nolint:nilerr // a cgroup removed under the walk: go on
			}
			if d.IsDir() && strings.Count(strings.TrimPrefix(p, root), "/") >= 2 {
				c.add(KindCgroup, p)
			}
			return nil
		})
	}
}

// stateEntries counts the entries of the state_dir: sandbox directories
// and jail uid leases. The start journal (statedir.StartsFile and its
// rotation) is the node's record, kept on purpose and bounded: it is no
// sandbox's leftover.
func (c *Census) stateEntries(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !os.IsNotExist(err) {
			c.fail("read %s: %v", dir, err)
		}
		return
	}
	for _, e := range entries {
		if e.Name() == statedir.StartsFile || e.Name() == statedir.StartsFile+".1" {
			continue
		}
		c.add(KindState, filepath.Join(dir, e.Name()))
	}
}

// special counts the sockets and FIFOs below dir, without following
// symlinks and without entering other mounts' contents that vanish
// (errors inside the walk are skipped: a sandbox being removed).
func (c *Census) special(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // a sandbox removed under the walk: go on
		}
		switch {
		case d.Type()&fs.ModeSocket != 0:
			c.add(KindSocket, p)
		case d.Type()&fs.ModeNamedPipe != 0:
			c.add(KindFIFO, p)
		}
		return nil
	})
}

// ctrFIFODir is where ctr's tasks get their stdio FIFOs (containerd's
// cio default).
const ctrFIFODir = "/run/containerd/fifo"

// RemoveCtrFIFOs does what ctr would for tasks it still knew: it removes
// the FIFO directories of the tasks whose ids start with id (their FIFOs
// are named <task>-stdin, -stdout, -stderr). ctr removes them only when it
// deletes a task that still exists, and containerd drops the tasks of a
// dead shim first.
func RemoveCtrFIFOs(id string) error {
	m, err := filepath.Glob(filepath.Join(ctrFIFODir, "*", id+"*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range m {
		if err := os.RemoveAll(filepath.Dir(p)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Census counts the host now, including this containerd's state
// directory (CRI's FIFOs, shim sockets): compare two with Since.
func (c *Containerd) Census() *Census { return TakeCensus(c.CensusScope()) }

// CensusScope is what Census counts: the host, Veil's state dir and this
// containerd's state directory (for Settle).
func (c *Containerd) CensusScope() CensusScope {
	scope := c.censusScope
	scope.Dirs = append(append([]string(nil), scope.Dirs...), filepath.Join(c.Dir, "state"))
	return scope
}

// veilStateDir is the state_dir of the Veil config the shims of a
// containerd started with opts load ("" when it cannot be read: the
// census then skips it).
func veilStateDir(opts Options) string {
	if opts.StateDir != "" {
		return opts.StateDir
	}
	path := ConfigPath()
	for _, kv := range opts.Env {
		if v, ok := strings.CutPrefix(kv, config.EnvPath+"="); ok {
			path = v
		}
	}
	if opts.CRI != nil {
		path = opts.CRI.veilConfig()
	}
	cfg, err := config.Load(path)
	if err != nil {
		return ""
	}
	return cfg.StateDir
}

// censusSettle is how long a teardown may take to finish after the test
// returned (a shim exits after answering its last request).
const censusSettle = 15 * time.Second

// CheckLeaks takes a census now and, when t ends (Cleanup), fails t with
// whatever the host holds beyond it, once teardown had censusSettle to
// finish.
func CheckLeaks(t testing.TB, scope CensusScope) {
	t.Helper()
	base := TakeCensus(scope)
	t.Cleanup(func() {
		if leaks := Settle(base, scope, censusSettle); len(leaks) > 0 {
			t.Errorf("leak census: the test left %d resources on the host:\n  %s", len(leaks), strings.Join(leaks, "\n  "))
		}
	})
}

// Settle polls the census until it has nothing beyond base or d passed,
// and returns what is left.
func Settle(base *Census, scope CensusScope, d time.Duration) []string {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		leaks := TakeCensus(scope).Since(base)
		if len(leaks) == 0 || time.Now().After(deadline) {
			return leaks
		}
		<-tick.C // teardown ends without an event to wait on
	}
}
