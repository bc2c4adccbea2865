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

// bootLine is what a container prints of its kernel: the boot id.
const bootLine = `echo boot $(cat /proc/sys/kernel/random/boot_id)`

// bootOf takes the boot id from a container's log.
func bootOf(log string) string {
	for _, l := range strings.Split(log, "\n") {
		if b, ok := strings.CutPrefix(l, "boot "); ok {
			return strings.TrimSpace(b)
		}
	}
	return ""
}

// checkKernel says whether a container ran on the kernel class gives it:
// the host's for runc, its VM's for veil.
func checkKernel(t *testing.T, class, boot string) {
	t.Helper()
	host := hostBootID(t)
	switch {
	case boot == "":
		t.Error("the container printed no boot id")
	case class == "runc" && boot != host:
		t.Errorf("runc container's boot id %s is not the host's %s", boot, host)
	case class == "veil" && boot == host:
		t.Errorf("veil container runs on the host's kernel (boot id %s)", boot)
	}
}

// testLiveness: a failing liveness probe restarts the container; on veil
// the new container runs in the same VM (same guest boot id).
func testLiveness(t *testing.T, s *suite, class string) {
	s.apply(t, podHead+`  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: {{.Image}}
    command: ["sh", "-c", "touch /tmp/healthy; `+bootLine+`; exec sleep 3600"]
    livenessProbe:
      exec:
        command: ["cat", "/tmp/healthy"]
      periodSeconds: 2
      failureThreshold: 1
`, class, map[string]string{"Name": "live"})
	pod := name("live", class)
	s.waitReady(t, pod)
	s.kubectl(t, "exec", pod, "--", "rm", "/tmp/healthy")
	eventually(t, "the container restarts and is ready again", 3*time.Minute, func() error {
		p, err := s.k.GetPod(s.ctx, pod)
		if err != nil {
			return err
		}
		c, err := p.Container("app")
		if err != nil {
			return err
		}
		if c.RestartCount < 1 || !c.Ready {
			return fmt.Errorf("restarts %d, ready %v", c.RestartCount, c.Ready)
		}
		return nil
	})
	before := bootOf(s.kubectl(t, "logs", "--previous", pod))
	after := bootOf(s.kubectl(t, "logs", pod))
	if before != after {
		t.Errorf("the restarted container runs on another kernel: boot %s, then %s", before, after)
	}
	checkKernel(t, class, after)
}

// testProbes: exec and HTTP startup probes hold a container's readiness
// back until they pass; exec and HTTP readiness probes then gate Ready.
func testProbes(t *testing.T, s *suite, class string) {
	s.apply(t, podHead+`  terminationGracePeriodSeconds: 2
  containers:
  - name: a
    image: {{.Image}}
    command: ["sh", "-c", "mkdir -p /www && exec httpd -f -p 8080 -h /www"]
    startupProbe:
      exec:
        command: ["test", "-f", "/tmp/started"]
      periodSeconds: 1
      failureThreshold: 600
    readinessProbe:
      httpGet: {path: /ready, port: 8080}
      periodSeconds: 1
  - name: b
    image: {{.Image}}
    command: ["sh", "-c", "mkdir -p /www && exec httpd -f -p 8081 -h /www"]
    startupProbe:
      httpGet: {path: /started, port: 8081}
      periodSeconds: 1
      failureThreshold: 600
    readinessProbe:
      exec:
        command: ["test", "-f", "/tmp/ready"]
      periodSeconds: 1
`, class, map[string]string{"Name": "probes"})
	pod := name("probes", class)
	status := func() (*Pod, ContainerStatus, ContainerStatus, error) {
		p, err := s.k.GetPod(s.ctx, pod)
		if err != nil {
			return nil, ContainerStatus{}, ContainerStatus{}, err
		}
		a, err := p.Container("a")
		if err != nil {
			return nil, a, a, err
		}
		b, err := p.Container("b")
		return p, a, b, err
	}
	started := func(c ContainerStatus) bool { return c.Started != nil && *c.Started }
	eventually(t, "both containers running", 3*time.Minute, func() error {
		_, a, b, err := status()
		if err != nil {
			return err
		}
		if a.State["running"] == nil || b.State["running"] == nil {
			return fmt.Errorf("states %v, %v", a.State, b.State)
		}
		return nil
	})
	// The startup probes cannot pass yet.
	if p, a, b, err := status(); err != nil || started(a) || started(b) || p.Condition("Ready") == "True" {
		t.Fatalf("before the startup probes pass: started %v %v, Ready %s (%v)", a.Started, b.Started, p.Condition("Ready"), err)
	}
	s.kubectl(t, "exec", pod, "-c", "a", "--", "touch", "/tmp/started")
	s.kubectl(t, "exec", pod, "-c", "b", "--", "touch", "/www/started")
	eventually(t, "both startup probes pass", 2*time.Minute, func() error {
		_, a, b, err := status()
		if err != nil {
			return err
		}
		if !started(a) || !started(b) {
			return fmt.Errorf("started %v, %v", a.Started, b.Started)
		}
		return nil
	})
	if p, a, b, err := status(); err != nil || a.Ready || b.Ready || p.Condition("Ready") == "True" {
		t.Fatalf("before the readiness probes pass: ready %v %v, Ready %s (%v)", a.Ready, b.Ready, p.Condition("Ready"), err)
	}
	s.kubectl(t, "exec", pod, "-c", "a", "--", "sh", "-c", "echo ok > /www/ready")
	s.kubectl(t, "exec", pod, "-c", "b", "--", "touch", "/tmp/ready")
	s.waitReady(t, pod)
}

// testVolumes: Secret, ConfigMap, downward API and emptyDir volumes show
// their contents; an update of the ConfigMap reaches the running pod.
func testVolumes(t *testing.T, s *suite, class string) {
	objects := `apiVersion: v1
kind: Secret
metadata:
  name: secret-{{.Class}}
stringData:
  password: s3cr3t
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: config-{{.Class}}
data:
  greeting: {{.Greeting}}
`
	s.apply(t, objects, class, map[string]string{"Greeting": "hello"})
	s.apply(t, podHead+`  terminationGracePeriodSeconds: 2
  volumes:
  - name: secret
    secret: {secretName: secret-{{.Class}}}
  - name: config
    configMap: {name: config-{{.Class}}}
  - name: podinfo
    downwardAPI:
      items:
      - path: name
        fieldRef: {fieldPath: metadata.name}
      - path: labels
        fieldRef: {fieldPath: metadata.labels}
  - name: cache
    emptyDir: {}
  containers:
  - name: writer
    image: {{.Image}}
    command: ["sh", "-c", "echo written > /cache/from-writer; exec sleep 3600"]
    volumeMounts:
    - {name: cache, mountPath: /cache}
  - name: reader
    image: {{.Image}}
    command: ["sleep", "3600"]
    volumeMounts:
    - {name: secret, mountPath: /etc/secret}
    - {name: config, mountPath: /etc/config}
    - {name: podinfo, mountPath: /etc/podinfo}
    - {name: cache, mountPath: /cache}
`, class, map[string]string{"Name": "volumes"})
	pod := name("volumes", class)
	s.waitReady(t, pod)
	read := func(p string) (string, error) {
		out, err := s.k.Kubectl(s.ctx, "exec", pod, "-c", "reader", "--", "cat", p)
		return strings.TrimSpace(out), err
	}
	for _, c := range []struct{ path, want string }{
		{"/etc/secret/password", "s3cr3t"},
		{"/etc/config/greeting", "hello"},
		{"/etc/podinfo/name", pod},
		{"/etc/podinfo/labels", `app="volumes"`},
	} {
		if got, err := read(c.path); err != nil || got != c.want {
			t.Errorf("%s = %q (%v), want %q", c.path, got, err, c.want)
		}
	}
	eventually(t, "the writer's file in the shared emptyDir", time.Minute, func() error {
		got, err := read("/cache/from-writer")
		if err != nil {
			return err
		}
		if got != "written" {
			return fmt.Errorf("read %q", got)
		}
		return nil
	})
	m, err := Manifest(objects, class, map[string]string{"Greeting": "bonjour"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.k.Apply(s.ctx, m); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ConfigMap update in the running pod", 3*time.Minute, func() error {
		got, err := read("/etc/config/greeting")
		if err != nil {
			return err
		}
		if got != "bonjour" {
			return fmt.Errorf("read %q", got)
		}
		return nil
	})
}

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

// hostNetworkRefusal is what the veil shim answers a pod that asks for
// the host's network namespace, and what the kubelet reports of it.
const hostNetworkRefusal = "shares the host's network (hostNetwork) namespace, which a VM cannot do"

// testHostNetwork: a hostNetwork pod runs on runc; on veil its sandbox is
// refused with the clear message, which the kubelet reports as an event.
func testHostNetwork(t *testing.T, s *suite, class string) {
	s.apply(t, podHead+`  hostNetwork: true
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: {{.Image}}
    command: ["sleep", "3600"]
`, class, map[string]string{"Name": "hostnet"})
	pod := name("hostnet", class)
	if class == "runc" {
		s.waitReady(t, pod)
		return
	}
	eventually(t, "the kubelet reports the refusal", 3*time.Minute, func() error {
		out, err := s.k.Kubectl(s.ctx, "get", "events", "--field-selector", "involvedObject.name="+pod,
			"-o", "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}")
		if err != nil {
			return err
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "FailedCreatePodSandBox: ") && strings.Contains(l, hostNetworkRefusal) {
				t.Logf("event: %s", l)
				return nil
			}
		}
		return fmt.Errorf("events: %q", out)
	})
	p, err := s.k.GetPod(s.ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != "Pending" {
		t.Errorf("pod phase %s, want Pending", p.Status.Phase)
	}
}
