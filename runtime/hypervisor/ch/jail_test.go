package ch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/jail"
	"github.com/veil-runtime/veil/runtime/statedir"
	testharness "github.com/veil-runtime/veil/test/harness"
)

const testJailUID = 3_999_100_001

// consoleSink records what Drain receives and signals each read.
type consoleSink struct {
	mu   sync.Mutex
	got  bytes.Buffer
	read chan struct{}
}

func newSink() *consoleSink { return &consoleSink{read: make(chan struct{}, 1)} }

func (c *consoleSink) Drain(_ context.Context, r io.Reader) error {
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

// TestJailContract: with a jail, Cloud Hypervisor is launched through it
// as the sandbox's uid, in its own namespaces but the pod's network
// namespace, with /dev/kvm and /dev/net/tun, a root holding only the
// guest images, virtiofsd's sockets and the helper directory; with its
// seccomp filters on; given only paths of that root; with Landlock on
// for them; and its serial console on a socket.
func TestJailContract(t *testing.T) {
	dir := "/run/veil/sandboxes/sb1"
	base := hypervisor.VMConfig{
		ID: "sb1", Dir: dir, Kernel: "/usr/share/veil/vmlinux", Initrd: "/usr/share/veil/initramfs.cpio",
		VCPUs: 1, MemoryMiB: 256,
		VsockSocket: filepath.Join(dir, statedir.VsockSocket),
		Filesystems: []hypervisor.Filesystem{{Tag: "veil", Socket: filepath.Join(dir, "virtiofsd.sock")}},
		NetNSPath:   "/run/netns/cni-1",
	}
	jailed := base
	jailed.Jail = &jail.Spec{UID: testJailUID, GID: testJailUID, NoNewPrivs: true}
	jailed.Console = newSink()
	cases := []struct {
		name      string
		cfg       hypervisor.VMConfig
		wantArgs  []string
		wantNetNS string // proc.Spec.NetNSPath (nsenter) without a jail
		check     func(t *testing.T, js *jail.Spec, vc map[string]any)
	}{
		{
			name:      "without a jail",
			cfg:       base,
			wantArgs:  []string{"--api-socket", filepath.Join(dir, statedir.CHAPISocket), "--seccomp", "true"},
			wantNetNS: "/run/netns/cni-1",
			check: func(t *testing.T, js *jail.Spec, vc map[string]any) {
				if js != nil {
					t.Errorf("jail %+v without a jail config", js)
				}
				if vc["landlock_enable"] != nil {
					t.Errorf("landlock on without a jail")
				}
				wantJSON(t, vc["serial"], `{"mode":"Null"}`)
				wantJSON(t, vc["vsock"], fmt.Sprintf(`{"cid":3,"socket":%q}`, base.VsockSocket))
			},
		},
		{
			name:     "jailed",
			cfg:      jailed,
			wantArgs: []string{"--api-socket", "/helper/ch-api", "--seccomp", "true"},
			check: func(t *testing.T, js *jail.Spec, vc map[string]any) {
				if js == nil || js.UID != testJailUID || js.GID != testJailUID || !js.Namespaces || !js.NoNewPrivs {
					t.Fatalf("jail %+v", js)
				}
				if js.NetNS != "/run/netns/cni-1" {
					t.Errorf("jail joins %q, want the pod's network namespace", js.NetNS)
				}
				for _, d := range []string{"/dev/kvm", "/dev/net/tun"} {
					if _, err := os.Stat(d); err != nil {
						continue // left out on a host without it
					}
					if !slices.Contains(js.Devices, d) {
						t.Errorf("devices %v lack %s", js.Devices, d)
					}
				}
				wantBinds := []jail.Bind{
					{Source: base.Kernel, Target: "/vm/kernel"},
					{Source: base.Initrd, Target: "/vm/initrd"},
					{Source: filepath.Join(dir, statedir.HelperDir), Target: "/helper", Writable: true},
					{Source: filepath.Join(dir, "virtiofsd.sock"), Target: "/vm/fs0.sock"},
				}
				if !slices.Equal(js.Binds, wantBinds) {
					t.Errorf("binds %+v, want %+v", js.Binds, wantBinds)
				}
				if err := js.Validate(); err != nil {
					t.Error(err)
				}
				wantJSON(t, vc["payload"], `{"kernel":"/vm/kernel","initramfs":"/vm/initrd"}`)
				wantJSON(t, vc["vsock"], `{"cid":3,"socket":"/helper/uds"}`)
				wantJSON(t, vc["fs"], `[{"tag":"veil","socket":"/vm/fs0.sock","num_queues":1,"queue_size":1024}]`)
				wantJSON(t, vc["serial"], `{"mode":"Socket","socket":"/helper/console"}`)
				wantJSON(t, vc["landlock_enable"], `true`)
				wantJSON(t, vc["landlock_rules"], `[{"path":"/vm","access":"r"},{"path":"/helper","access":"rw"}]`)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := launchSpec(tc.cfg, "cloud-hypervisor", filepath.Join(dir, statedir.CHAPISocket))
			if !slices.Equal(spec.Args, tc.wantArgs) {
				t.Errorf("args %q, want %q", spec.Args, tc.wantArgs)
			}
			if spec.NetNSPath != tc.wantNetNS {
				t.Errorf("nsenter into %q, want %q", spec.NetNSPath, tc.wantNetNS)
			}
			b, err := json.Marshal(buildVMConfig(tc.cfg, sizing{}))
			if err != nil {
				t.Fatal(err)
			}
			var vc map[string]any
			json.Unmarshal(b, &vc)
			tc.check(t, spec.Jail, vc)
		})
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
		t.Errorf("got %s, want %s", g, want)
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

// TestJailedFakeVMM runs the fake VMM through the real jail: it serves
// the API from its root's /helper as the sandbox's uid with
// no_new_privs, outside the host's root, and the driver drains its
// serial console.
func TestJailedFakeVMM(t *testing.T) {
	testharness.Skip(t)
	h := newHarness(t, fakePlan{})
	exe, _ := os.Executable()
	tools := filepath.Dir(h.planPath)
	for _, p := range []string{filepath.Join(h.dir, statedir.HelperDir), tools} {
		if err := os.Chown(p, testJailUID, testJailUID); err != nil {
			t.Fatal(err)
		}
	}
	cfg := h.config()
	sink := newSink()
	cfg.Console = sink
	cfg.Filesystems = nil // no virtiofsd here
	// The fake is this test binary behind a script, reading its plan and
	// the API description: show them in its root too.
	cfg.Jail = &jail.Spec{UID: testJailUID, GID: testJailUID, NoNewPrivs: true, Binds: []jail.Bind{
		{Source: tools, Target: tools, Writable: true},
		{Source: exe, Target: exe},
		{Source: filepath.Dir(h.plan.Spec), Target: filepath.Dir(h.plan.Spec)},
	}}
	cfg.Kernel, cfg.Initrd = exe, exe // any files: the fake does not read them
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := h.driver.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer stopVM(t, v)
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", v.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	u := strconv.Itoa(testJailUID)
	for _, want := range []string{"Uid:\t" + u + "\t" + u, "NoNewPrivs:\t1", "CapEff:\t0000000000000000"} {
		if !strings.Contains(string(st), want) {
			t.Errorf("status lacks %q:\n%s", want, st)
		}
	}
	if root, _ := os.Stat(fmt.Sprintf("/proc/%d/root/", v.Pid())); root != nil {
		if host, _ := os.Stat("/"); os.SameFile(root, host) {
			t.Error("the VMM's root is the host's")
		}
	}
	if start := h.startRecord(t); !slices.Equal(start.Args, []string{"--api-socket", "/helper/ch-api", "--seccomp", "true"}) {
		t.Errorf("started with %q", start.Args)
	}
	timeout := time.After(10 * time.Second)
	for sink.String() != fakeConsole {
		select {
		case <-sink.read:
		case <-timeout:
			t.Fatalf("console sink got %q, want %q", sink.String(), fakeConsole)
		}
	}
}
