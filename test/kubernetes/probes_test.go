package kubernetes

import (
	"fmt"
	"strings"
	"testing"
	"time"
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
	// Ready says the new container runs, not that its first line has
	// reached the log yet.
	var after string
	eventually(t, "the restarted container logs its boot id", time.Minute, func() error {
		log, err := s.k.Kubectl(s.ctx, "logs", pod)
		if err != nil {
			return err
		}
		if after = bootOf(log); after == "" {
			return fmt.Errorf("log so far: %q", log)
		}
		return nil
	})
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
