package ch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/jail"
	"github.com/veil-runtime/veil/runtime/proc"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/integration"
)

const testJailUID = 3_999_100_001

// consoleSink records what Drain receives, signals each read and closes
// drained when Drain returns.
type consoleSink struct {
	mu      sync.Mutex
	got     bytes.Buffer
	read    chan struct{}
	drained chan struct{}
}

func newSink() *consoleSink {
	return &consoleSink{read: make(chan struct{}, 1), drained: make(chan struct{})}
}

func (c *consoleSink) Drain(_ context.Context, r io.Reader) error {
	defer close(c.drained)
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		c.mu.Lock()
		c.got.Write(buf[:n])
		c.mu.Unlock()
		select {
		case c.read <- struct{}{}:
		default:
		}
		if err != nil {
			return nil
		}
	}
}

func (c *consoleSink) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got.String()
}

// placer records the pids placed in the "sandbox cgroup".
type placer struct {
	mu   sync.Mutex
	pids []int
}

func (p *placer) Add(pid int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pids = append(p.pids, pid)
	return nil
}

func (p *placer) placed() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.pids)
}

// TestJailContract: with a jail, Cloud Hypervisor is launched through it
// as the sandbox's uid, in its own namespaces but the pod's network
// namespace (no nsenter), with /dev/kvm and /dev/net/tun, a root holding
// only the guest images, virtiofsd's sockets, a restore source and the
// helper directory; in the sandbox's cgroup; with its seccomp filters on;
// given only paths of that root; with Landlock on; its serial console on
// a socket. Without a jail, what it was before.
func TestJailContract(t *testing.T) {
	dir := "/run/veil/sandboxes/sb1"
	cg := &placer{}
	base := hypervisor.VMConfig{
		ID: "sb1", Dir: dir, Kernel: "/usr/share/veil/vmlinux", Initrd: "/usr/share/veil/initramfs.cpio",
		Cmdline: "console=ttyS0", VCPUs: 1, MemoryMiB: 256,
		VsockSocket: filepath.Join(dir, statedir.VsockSocket),
		Filesystems: []hypervisor.Filesystem{{Tag: "veil", Socket: filepath.Join(dir, "virtiofsd.sock")}},
		NetNSPath:   "/run/netns/cni-1",
		NICs:        []hypervisor.NIC{{Tap: "tap0_veil", MAC: "02:00:0a:d5:07:02"}},
		Cgroup:      cg,
	}
	hostAPI := filepath.Join(dir, statedir.CHAPISocket)
	withConsole := base
	withConsole.Console = newSink()
	jailed := base
	jailed.Jail = &jail.Spec{UID: testJailUID, GID: testJailUID, NoNewPrivs: true}
	jailed.Console = newSink()
	bare := jailed
	bare.Initrd, bare.NetNSPath, bare.Filesystems, bare.NICs = "", "", nil, nil
	stray := jailed
	stray.VsockSocket = filepath.Join(dir, "uds")

	wantBinds := []jail.Bind{
		{Source: base.Kernel, Target: "/vm/kernel"},
		{Source: base.Initrd, Target: "/vm/initrd"},
		{Source: filepath.Join(dir, statedir.HelperDir), Target: "/helper", Writable: true},
		{Source: filepath.Join(dir, "virtiofsd.sock"), Target: "/vm/fs0.sock"},
	}
	jailedCreate := `{
		"payload": {"kernel": "/vm/kernel", "initramfs": "/vm/initrd", "cmdline": "console=ttyS0"},
		"vsock": {"cid": 3, "socket": "/helper/uds"},
		"fs": [{"tag": "veil", "socket": "/vm/fs0.sock", "num_queues": 1, "queue_size": 1024}],
		"net": [{"tap": "tap0_veil", "mac": "02:00:0a:d5:07:02"}],
		"serial": {"mode": "Socket", "socket": "/helper/console"},
		"console": {"mode": "Off"},
		"landlock_enable": true,
		"landlock_rules": [{"path": "/vm", "access": "r"}, {"path": "/helper", "access": "rw"}]
	}`
	cases := []struct {
		name     string
		cfg      hypervisor.VMConfig
		snapshot string // a restore's source
		wantErr  string // from the jail layout
		wantArgs []string
		// wantNSEnter is proc.Spec.NetNSPath: nsenter, without a jail.
		wantNSEnter string
		// wantCreate is the vm.create body (keys it leaves out unchecked).
		wantCreate string
		check      func(t *testing.T, spec proc.Spec, p vmmPaths, vc map[string]any)
	}{
		{
			name:        "without a jail",
			cfg:         base,
			wantArgs:    []string{"--api-socket", hostAPI, "--seccomp", "true"},
			wantNSEnter: "/run/netns/cni-1",
			wantCreate: fmt.Sprintf(`{
				"payload": {"kernel": %q, "initramfs": %q},
				"vsock": {"cid": 3, "socket": %q},
				"fs": [{"tag": "veil", "socket": %q}],
				"serial": {"mode": "Null"},
				"console": {"mode": "Off"}
			}`, base.Kernel, base.Initrd, base.VsockSocket, base.Filesystems[0].Socket),
			check: func(t *testing.T, spec proc.Spec, _ vmmPaths, vc map[string]any) {
				if spec.Jail != nil {
					t.Errorf("jail %+v without a jail config", spec.Jail)
				}
				if vc["landlock_enable"] != nil || vc["landlock_rules"] != nil {
					t.Errorf("Landlock on without a jail")
				}
			},
		},
		{
			name:        "without a jail, with a console sink",
			cfg:         withConsole,
			wantArgs:    []string{"--api-socket", hostAPI, "--seccomp", "true"},
			wantNSEnter: "/run/netns/cni-1",
			wantCreate:  fmt.Sprintf(`{"serial": {"mode": "Socket", "socket": %q}, "console": {"mode": "Off"}}`, filepath.Join(dir, statedir.CHConsoleSocket)),
		},
		{
			name:       "jailed",
			cfg:        jailed,
			wantArgs:   []string{"--api-socket", "/helper/ch-api", "--seccomp", "true"},
			wantCreate: jailedCreate,
			check: func(t *testing.T, spec proc.Spec, p vmmPaths, vc map[string]any) {
				js := spec.Jail
				if js == nil || js.UID != testJailUID || js.GID != testJailUID || !js.Namespaces || !js.NoNewPrivs {
					t.Fatalf("jail %+v", js)
				}
				if js.NetNS != "/run/netns/cni-1" {
					t.Errorf("jail joins %q, want the pod's network namespace", js.NetNS)
				}
				for _, d := range chDevices {
					_, err := os.Stat(d)
					if has := slices.Contains(js.Devices, d); has != (err == nil) {
						t.Errorf("devices %v: %s there %v, on the host %v", js.Devices, d, has, err == nil)
					}
				}
				if gid, ok := jail.KVMGroup(); ok && !slices.Contains(js.Groups, gid) {
					t.Errorf("groups %v lack the kvm group %d", js.Groups, gid)
				}
				if !slices.Equal(js.Binds, wantBinds) {
					t.Errorf("binds %+v\nwant  %+v", js.Binds, wantBinds)
				}
				if err := js.Validate(); err != nil {
					t.Error(err)
				}
				if jailed.Jail.Binds != nil || jailed.Jail.Devices != nil || jailed.Jail.Namespaces {
					t.Errorf("the sandbox's jail changed: %+v", jailed.Jail)
				}
			},
		},
		{
			name:       "jailed, no initrd, no pod network namespace",
			cfg:        bare,
			wantArgs:   []string{"--api-socket", "/helper/ch-api", "--seccomp", "true"},
			wantCreate: `{"payload": {"kernel": "/vm/kernel"}, "vsock": {"cid": 3, "socket": "/helper/uds"}}`,
			check: func(t *testing.T, spec proc.Spec, _ vmmPaths, vc map[string]any) {
				if vc["payload"].(map[string]any)["initramfs"] != nil || vc["fs"] != nil || vc["net"] != nil {
					t.Errorf("vm.create %v", vc)
				}
				if want := []jail.Bind{wantBinds[0], wantBinds[2]}; !slices.Equal(spec.Jail.Binds, want) {
					t.Errorf("binds %+v, want %+v", spec.Jail.Binds, want)
				}
				if spec.Jail.NetNS != "" {
					t.Errorf("joins %q, want a network namespace of its own", spec.Jail.NetNS)
				}
			},
		},
		{
			name:       "jailed restore",
			cfg:        jailed,
			snapshot:   "/var/lib/veil/snapshots/s1",
			wantArgs:   []string{"--api-socket", "/helper/ch-api", "--seccomp", "true"},
			wantCreate: jailedCreate,
			check: func(t *testing.T, spec proc.Spec, p vmmPaths, _ map[string]any) {
				want := append(slices.Clone(wantBinds), jail.Bind{Source: "/var/lib/veil/snapshots/s1", Target: "/vm/snapshot"})
				if !slices.Equal(spec.Jail.Binds, want) {
					t.Errorf("binds %+v\nwant  %+v", spec.Jail.Binds, want)
				}
				if p.snapshot != "/vm/snapshot" {
					t.Errorf("restores from %q, want /vm/snapshot", p.snapshot)
				}
			},
		},
		{
			name:    "jailed, vsock socket outside the helper directory",
			cfg:     stray,
			wantErr: "vsock socket " + stray.VsockSocket + " is outside the helper directory",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var layout *jailLayout
			if tc.cfg.Jail != nil {
				var err error
				layout, err = newJailLayout(tc.cfg, tc.snapshot)
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("layout error %v, want %q", err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			p := vmmView(tc.cfg, layout, tc.snapshot)
			spec := launchSpec(tc.cfg, "cloud-hypervisor", p.apiSocket, layout)
			if !slices.Equal(spec.Args, tc.wantArgs) {
				t.Errorf("args %q, want %q", spec.Args, tc.wantArgs)
			}
			if spec.NetNSPath != tc.wantNSEnter {
				t.Errorf("nsenter into %q, want %q", spec.NetNSPath, tc.wantNSEnter)
			}
			if spec.Cgroup != cg {
				t.Errorf("cgroup placer %v, want the config's", spec.Cgroup)
			}
			b, err := json.Marshal(buildVMConfig(p, sizing{}))
			if err != nil {
				t.Fatal(err)
			}
			var vc map[string]any
			if err := json.Unmarshal(b, &vc); err != nil {
				t.Fatal(err)
			}
			wantJSON(t, vc, tc.wantCreate)
			if tc.check != nil {
				tc.check(t, spec, p, vc)
			}
		})
	}
}

// TestJailPaths: a jailed VMM is handed a host path only as the path it
// has in its root; one it does not have is refused before any call.
func TestJailPaths(t *testing.T) {
	dir := "/run/veil/sandboxes/sb1"
	cfg := hypervisor.VMConfig{
		Dir: dir, Kernel: "/usr/share/veil/vmlinux", Initrd: "/usr/share/veil/initramfs.cpio",
		VsockSocket: filepath.Join(dir, statedir.VsockSocket),
		Filesystems: []hypervisor.Filesystem{{Tag: "veil", Socket: filepath.Join(dir, "virtiofsd.sock")}},
		Jail:        &jail.Spec{UID: testJailUID, GID: testJailUID},
	}
	l, err := newJailLayout(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	const outside = "is outside the jailed cloud-hypervisor's root"
	for _, tc := range []struct{ host, want, wantErr string }{
		{host: filepath.Join(dir, "helper/disk.img"), want: "/helper/disk.img"},
		{host: filepath.Join(dir, "helper/snapshots/s1"), want: "/helper/snapshots/s1"},
		{host: filepath.Join(dir, "helper"), want: "/helper"},
		{host: filepath.Join(dir, "helper/sub/../fs1.sock"), want: "/helper/fs1.sock"},
		{host: cfg.Kernel, want: "/vm/kernel"},
		{host: filepath.Join(dir, "virtiofsd.sock"), want: "/vm/fs0.sock"},
		{host: filepath.Join(dir, "helper/../rootfs.img"), wantErr: outside},
		{host: filepath.Join(dir, "helperx/disk.img"), wantErr: outside},
		{host: filepath.Join(dir, "virtiofsd.sock/x"), wantErr: outside},
		{host: "/etc/shadow", wantErr: outside},
		{host: "helper/disk.img", wantErr: outside},
	} {
		t.Run(tc.host, func(t *testing.T) {
			got, err := l.path(tc.host)
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("%q, %v; want an error with %q", got, err, tc.wantErr)
			case tc.wantErr == "" && (err != nil || got != tc.want):
				t.Errorf("%q, %v; want %q", got, err, tc.want)
			}
		})
	}

	// The abilities refuse before calling the VMM (there is no API here).
	v := &vm{cfg: cfg, layout: l}
	ctx := context.Background()
	if _, err := v.AddDisk(ctx, hypervisor.Disk{Path: filepath.Join(dir, "rootfs.img")}); err == nil || !strings.Contains(err.Error(), outside) {
		t.Errorf("AddDisk outside the root: %v", err)
	}
	if _, err := v.AddFilesystem(ctx, hypervisor.Filesystem{Tag: "x", Socket: "/run/other.sock"}); err == nil || !strings.Contains(err.Error(), outside) {
		t.Errorf("AddFilesystem outside the root: %v", err)
	}
	if err := v.Snapshot(ctx, "/var/lib/veil/snap"); err == nil || !strings.Contains(err.Error(), outside) {
		t.Errorf("Snapshot outside the root: %v", err)
	}
	if _, err := v.AddNet(ctx, hypervisor.NetDevice{Tap: "tap1_veil", MTU: 1400}); err == nil || !strings.Contains(err.Error(), "MTU") {
		t.Errorf("AddNet with an MTU: %v", err)
	}
	if p, err := (&vm{}).vmmPath("/anywhere"); p != "/anywhere" || err != nil {
		t.Errorf("unjailed: %q, %v", p, err)
	}
}

// wantJSON compares a decoded value with JSON text, ignoring keys the
// text leaves out of an object.
func wantJSON(t *testing.T, got any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !subset(w, got) {
		g, _ := json.Marshal(got)
		t.Errorf("got  %s\nwant %s", g, want)
	}
}

func subset(want, got any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !subset(v, g[k]) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !subset(w[i], g[i]) {
				return false
			}
		}
		return true
	default:
		return fmt.Sprint(want) == fmt.Sprint(got)
	}
}

// holdNetNS returns a fresh network namespace, held by an `unshare
// --net` child until the test ends, and its id.
func holdNetNS(t *testing.T) (path, id string) {
	t.Helper()
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("unshare", "--net", "sleep", "600")
	if err := holder.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		_ = holder.Wait()
	})
	path = fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)
	// unshare switches namespace before it execs sleep.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if id, err = os.Readlink(path); err != nil {
			t.Fatal(err)
		}
		if id != own {
			return path, id
		}
		if time.Now().After(deadline) {
			t.Fatal("unshare never entered a new network namespace")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestJailedFakeVMM runs the fake VMM (this test binary) through the real
// jail stage, and unjailed for comparison. Jailed, it runs as the
// sandbox's uid with no_new_privs and no capabilities, outside the host's
// root (the sandbox directory is not there), in an empty or the pod's
// network namespace, serving the API from its root's /helper; every path
// it is handed exists in its root and is usable as CH uses it (the fake
// checks); the bytes it writes on its console socket reach the sink,
// whose copy Stop ends; its pid was placed in the cgroup.
func TestJailedFakeVMM(t *testing.T) {
	integration.Require(t, integration.Root)
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		jailed  bool
		netns   bool // join a pod network namespace
		restore bool // Restore instead of Start
	}{
		{name: "not jailed"},
		{name: "jailed", jailed: true},
		{name: "jailed in the pod's network namespace", jailed: true, netns: true},
		{name: "not jailed restore", restore: true},
		{name: "jailed restore", jailed: true, restore: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, fakePlan{CheckPaths: true})
			exe, _ := os.Executable()
			tools := filepath.Dir(h.planPath)
			cfg := h.config()
			cg := &placer{}
			sink := newSink()
			cfg.Console, cfg.Cgroup = sink, cg
			// Real files and a listening virtiofsd socket: the fake
			// checks them.
			cfg.Kernel, cfg.Initrd = filepath.Join(tools, "vmlinux"), filepath.Join(tools, "initrd")
			snap := filepath.Join(tools, "snap")
			disk := filepath.Join(h.dir, statedir.HelperDir, "disk.img")
			for _, f := range []string{cfg.Kernel, cfg.Initrd, filepath.Join(snap, "config.json"), disk} {
				if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			fsl, err := net.Listen("unix", cfg.Filesystems[0].Socket)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = fsl.Close() }()
			wantNS := own
			wantStatus := []string{"Uid:\t0\t0\t0\t0", "NoNewPrivs:\t0"}
			wantArgs := []string{"--api-socket", filepath.Join(h.dir, statedir.CHAPISocket), "--seccomp", "true"}
			wantCreate := fmt.Sprintf(`{
				"payload": {"kernel": %q, "initramfs": %q},
				"vsock": {"socket": %q},
				"fs": [{"socket": %q}],
				"serial": {"mode": "Socket", "socket": %q}
			}`, cfg.Kernel, cfg.Initrd, cfg.VsockSocket, cfg.Filesystems[0].Socket, filepath.Join(h.dir, statedir.CHConsoleSocket))
			wantSource, wantDisk := "file://"+snap, disk
			if tc.jailed {
				// What the sandbox does: the helper directory is the jail
				// uid's, virtiofsd's socket connectable by it. The fake is
				// this binary behind a script in tools, reading its plan
				// and the API description there: show them in its root.
				for _, p := range []string{filepath.Join(h.dir, statedir.HelperDir), tools, cfg.Filesystems[0].Socket} {
					if err := os.Chown(p, testJailUID, testJailUID); err != nil {
						t.Fatal(err)
					}
				}
				cfg.Jail = &jail.Spec{UID: testJailUID, GID: testJailUID, NoNewPrivs: true, Binds: []jail.Bind{
					{Source: tools, Target: tools, Writable: true},
					{Source: exe, Target: exe},
					{Source: filepath.Dir(h.plan.Spec), Target: filepath.Dir(h.plan.Spec)},
				}}
				h.plan.Hidden = []string{h.dir, "/etc/passwd"}
				h.setFaults(t, nil) // rewrites the plan
				wantNS = ""
				u := strconv.Itoa(testJailUID)
				wantStatus = []string{"Uid:\t" + u + "\t" + u + "\t" + u + "\t" + u, "NoNewPrivs:\t1", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000"}
				wantArgs = []string{"--api-socket", "/helper/ch-api", "--seccomp", "true"}
				wantCreate = `{
					"payload": {"kernel": "/vm/kernel", "initramfs": "/vm/initrd"},
					"vsock": {"socket": "/helper/uds"},
					"fs": [{"socket": "/vm/fs0.sock"}],
					"serial": {"mode": "Socket", "socket": "/helper/console"},
					"landlock_enable": true
				}`
				wantSource, wantDisk = "file:///vm/snapshot", "/helper/disk.img"
			}
			if tc.netns {
				cfg.NetNSPath, wantNS = holdNetNS(t)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var v hypervisor.VM
			if tc.restore {
				v, err = h.driver.Restore(ctx, cfg, snap)
			} else {
				v, err = h.driver.Start(ctx, cfg)
			}
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			stopped := false
			defer func() {
				if !stopped {
					stopVM(t, v)
				}
			}()

			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", v.Pid()))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range wantStatus {
				if !strings.Contains(string(st), want) {
					t.Errorf("status lacks %q:\n%s", want, st)
				}
			}
			root, err := os.Stat(fmt.Sprintf("/proc/%d/root/", v.Pid()))
			if err != nil {
				t.Fatal(err)
			}
			if host, _ := os.Stat("/"); os.SameFile(root, host) == tc.jailed {
				t.Errorf("jailed %v, but the VMM's root is the host's: %v", tc.jailed, os.SameFile(root, host))
			}
			// In its own PID namespace, the jailed VMM is pid 1.
			wantPid := v.Pid()
			if tc.jailed {
				wantPid = 1
			}
			start := h.startRecord(t)
			if !slices.Equal(start.Args, wantArgs) || start.Pid != wantPid {
				t.Errorf("pid %d started with %q, want pid %d with %q", start.Pid, start.Args, wantPid, wantArgs)
			}
			// Read from here: the jailed VMM has no /proc.
			ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", v.Pid()))
			switch {
			case err != nil:
				t.Error(err)
			case wantNS != "" && ns != wantNS:
				t.Errorf("VMM in network namespace %s, want %s", ns, wantNS)
			case wantNS == "" && ns == own:
				t.Errorf("jailed VMM in the host's network namespace %s", own)
			}
			if got := cg.placed(); !slices.Equal(got, []int{v.Pid()}) {
				t.Errorf("cgroup got pids %v, want [%d]", got, v.Pid())
			}

			if tc.restore {
				r := h.calls(t)[1]
				assertJSON(t, "vm.restore", r.Body, fmt.Sprintf(`{"source_url": %q, "resume": true}`, wantSource))
			} else {
				var vc map[string]any
				if err := json.Unmarshal([]byte(h.calls(t)[1].Body), &vc); err != nil {
					t.Fatal(err)
				}
				wantJSON(t, vc, wantCreate)
				if !tc.jailed && vc["landlock_enable"] != nil {
					t.Errorf("Landlock on without a jail")
				}
				timeout := time.After(10 * time.Second)
				for sink.String() != fakeConsole {
					select {
					case <-sink.read:
					case <-timeout:
						t.Fatalf("console sink got %q, want %q", sink.String(), fakeConsole)
					}
				}
				// A hot-added disk is handed as the VMM sees it.
				if _, err := v.(hypervisor.DiskAdder).AddDisk(ctx, hypervisor.Disk{Path: disk}); err != nil {
					t.Fatalf("AddDisk: %v", err)
				}
				calls := h.calls(t)
				assertJSON(t, "vm.add-disk", calls[len(calls)-1].Body, fmt.Sprintf(`{"path": %q}`, wantDisk))
			}

			stopVM(t, v)
			stopped = true
			if !tc.restore {
				select {
				case <-sink.drained:
				default:
					t.Error("Stop returned with the console still being drained")
				}
			} else if sink.String() != "" {
				t.Errorf("console of a restored VM without one: %q", sink.String())
			}
			h.records(t) // fails on any path the fake could not use, or saw
			h.assertGone(t, v.Pid())
			if _, err := os.Stat(filepath.Join(h.dir, statedir.CHConsoleSocket)); !os.IsNotExist(err) {
				t.Errorf("console socket left behind: %v", err)
			}
		})
	}
}
