package kubernetes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/test/harness"
)

// testGracefulDeletion: deleting a pod runs its preStop hook, then sends
// SIGTERM and waits for the container to finish its shutdown within
// terminationGracePeriodSeconds; on veil the VM is gone afterwards.
func testGracefulDeletion(t *testing.T, s *suite, class string) {
	out := filepath.Join(s.hostPaths, "graceful-"+class)
	if err := os.MkdirAll(out, 0o777); err != nil {
		t.Fatal(err)
	}
	s.apply(t, podHead+`  terminationGracePeriodSeconds: 60
  volumes:
  - name: out
    hostPath: {path: {{.Out}}, type: Directory}
  containers:
  - name: app
    image: {{.Image}}
    command: ["sh", "-c", "trap 'echo term >> /out/events; sleep 2; echo exit >> /out/events; exit 0' TERM; echo started >> /out/events; while true; do sleep 1; done"]
    volumeMounts:
    - {name: out, mountPath: /out}
    lifecycle:
      preStop:
        exec:
          command: ["sh", "-c", "echo prestop >> /out/events; sleep 3"]
`, class, map[string]string{"Name": "graceful", "Out": out})
	pod := name("graceful", class)
	p := s.waitReady(t, pod)
	sandbox, err := s.k.SandboxID(s.ctx, p.Metadata.UID)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.kubectl(t, "delete", "pod", pod, "--wait=true", "--timeout=3m")
	took := time.Since(start)
	b, err := os.ReadFile(filepath.Join(out, "events"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(b)); strings.Join(got, " ") != "started prestop term exit" {
		t.Errorf("events %q, want started, prestop, term, exit", got)
	}
	if took < 5*time.Second || took > 60*time.Second {
		t.Errorf("deletion took %s: want the preStop's 3 s and the handler's 2 s, within the 60 s grace period", took)
	}
	t.Logf("graceful deletion took %s", took.Round(time.Millisecond))
	if class == "veil" {
		eventually(t, "the pod's VM is gone", 2*time.Minute, func() error {
			if left := harness.Leftovers(s.f.StateDir, sandbox); len(left) > 0 {
				return fmt.Errorf("left of sandbox %s: %v", sandbox, left)
			}
			return nil
		})
	}
}

// testGracePeriod: a container that ignores SIGTERM is killed when
// terminationGracePeriodSeconds ends.
func testGracePeriod(t *testing.T, s *suite, class string) {
	s.apply(t, podHead+`  terminationGracePeriodSeconds: 4
  containers:
  - name: app
    image: {{.Image}}
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
`, class, map[string]string{"Name": "stubborn"})
	pod := name("stubborn", class)
	s.waitReady(t, pod)
	start := time.Now()
	s.kubectl(t, "delete", "pod", pod, "--wait=true", "--timeout=3m")
	took := time.Since(start)
	t.Logf("deletion took %s", took.Round(time.Millisecond))
	if took < 4*time.Second || took > 60*time.Second {
		t.Errorf("deletion took %s, want the 4 s grace period (and not much more)", took)
	}
}

// testInitContainer: the init container finishes before the app starts,
// in the same kernel (on veil: the same VM).
func testInitContainer(t *testing.T, s *suite, class string) {
	s.apply(t, podHead+`  terminationGracePeriodSeconds: 2
  volumes:
  - name: shared
    emptyDir: {}
  initContainers:
  - name: init
    image: {{.Image}}
    command: ["sh", "-c", "cat /proc/sys/kernel/random/boot_id > /shared/boot_id; echo done > /shared/init-done"]
    volumeMounts:
    - {name: shared, mountPath: /shared}
  containers:
  - name: app
    image: {{.Image}}
    command: ["sh", "-c", "test -f /shared/init-done && echo init ran first; test \"$(cat /shared/boot_id)\" = \"$(cat /proc/sys/kernel/random/boot_id)\" && echo same kernel; `+bootLine+`; exec sleep 3600"]
    volumeMounts:
    - {name: shared, mountPath: /shared}
`, class, map[string]string{"Name": "init"})
	pod := name("init", class)
	s.waitReady(t, pod)
	var log string
	eventually(t, "the app's log", time.Minute, func() error {
		var err error
		if log, err = s.k.Kubectl(s.ctx, "logs", pod, "-c", "app"); err != nil {
			return err
		}
		if bootOf(log) == "" {
			return fmt.Errorf("log %q", log)
		}
		return nil
	})
	for _, w := range []string{"init ran first", "same kernel"} {
		if !strings.Contains(log, w) {
			t.Errorf("app log %q lacks %q", log, w)
		}
	}
	checkKernel(t, class, bootOf(log))
}
