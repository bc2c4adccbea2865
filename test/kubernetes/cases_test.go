package kubernetes

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// cases run in this order on each runtime class.
var cases = []kcase{
	{"running with overhead in the pod cgroup", testOverhead},
	{"logs exec and port-forward", testStreaming},
	{"liveness probe restarts in the same VM", testLiveness},
	{"startup and readiness probes gate Ready", testProbes},
	{"secret configmap downward-API and emptyDir volumes", testVolumes},
	{"graceful deletion with preStop", testGracefulDeletion},
	{"grace period ends a container that ignores SIGTERM", testGracePeriod},
	{"init container runs first in the same VM", testInitContainer},
	{"hostNetwork", testHostNetwork},
}

// podHead starts every pod manifest: named <Name>-<class>, on the node,
// with the runtime class, without a service account token.
const podHead = `apiVersion: v1
kind: Pod
metadata:
  name: {{.Name}}-{{.Class}}
  labels:
    app: {{.Name}}
spec:
  runtimeClassName: {{.Class}}
  nodeName: {{.Node}}
  automountServiceAccountToken: false
  enableServiceLinks: false
  dnsPolicy: Default
`

func name(n, class string) string { return n + "-" + class }

// cgroupFile reads a file of pod uid's cgroup in controller (v1).
func podCgroupDir(controller, qos, uid string) (string, error) {
	pod := "pod" + uid
	rel := filepath.Join("kubepods", pod)
	if qos != "Guaranteed" {
		rel = filepath.Join("kubepods", strings.ToLower(qos), pod)
	}
	ms, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, m := range ms {
		for _, c := range strings.Split(filepath.Base(m), ",") {
			if c == controller {
				d := filepath.Join(m, rel)
				if _, err := os.Stat(d); err != nil {
					return "", err
				}
				return d, nil
			}
		}
	}
	return "", fmt.Errorf("no cgroup v1 hierarchy with controller %s", controller)
}

func readInt(t *testing.T, p string) int64 {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return v
}

// cgroupComms lists the command names of every process in a cgroup tree.
func cgroupComms(t *testing.T, dir string) map[string]int {
	t.Helper()
	comms := map[string]int{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, pid := range strings.Fields(string(b)) {
			if n := procName(pid); n != "" {
				comms[n]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return comms
}

// procName is a process's command name; for a program run through the
// dynamic loader (the virtiofsd `make setup` installs is: ld.so
// --library-path DIRS PROGRAM ARGS), the program's.
func procName(pid string) string {
	c, err := os.ReadFile("/proc/" + pid + "/comm")
	if err != nil {
		return ""
	}
	name := strings.TrimSpace(string(c))
	if !strings.HasPrefix(name, "ld-linux") {
		return name
	}
	argv, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil {
		return name
	}
	args := strings.Split(string(argv), "\x00")
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--library-path" || a == "--preload" || a == "--argv0" || a == "--audit":
			i++ // the option's value
		case strings.HasPrefix(a, "-"):
		default:
			return filepath.Base(a)
		}
	}
	return name
}

const mi = 1 << 20

// testOverhead: the pod runs; the RuntimeClass admission put veil's
// overhead in the spec; the pod cgroup's limits are the container's plus
// the overhead; the VM and its helpers are charged to the pod.
func testOverhead(t *testing.T, s *suite, class string) {
	s.apply(t, podHead+`  terminationGracePeriodSeconds: 5
  containers:
  - name: app
    image: {{.Image}}
    command: ["sh", "-c", "echo ready; exec sleep 3600"]
    resources:
      limits: {memory: 128Mi, cpu: 500m}
`, class, map[string]string{"Name": "sized"})
	p := s.waitReady(t, name("sized", class))
	if class == "veil" {
		if p.Spec.Overhead["memory"] != OverheadMemory || p.Spec.Overhead["cpu"] != OverheadCPU {
			t.Fatalf("spec.overhead = %v, want memory %s cpu %s", p.Spec.Overhead, OverheadMemory, OverheadCPU)
		}
		t.Logf("kubectl get pods -o wide:\n%s", s.kubectl(t, "get", "pods", "-o", "wide"))
		t.Logf("spec.overhead: %s", s.kubectl(t, "get", "pod", p.Metadata.Name, "-o", "jsonpath={.spec.overhead}"))
		t.Logf("kubectl describe pod %s:\n%s", p.Metadata.Name, s.kubectl(t, "describe", "pod", p.Metadata.Name))
	} else if len(p.Spec.Overhead) != 0 {
		t.Fatalf("runc pod has overhead %v", p.Spec.Overhead)
	}
	overMem, overCPU := int64(0), int64(0)
	if class == "veil" {
		overMem, overCPU = 320*mi, 250
	}
	mem, err := podCgroupDir("memory", p.Status.QOSClass, p.Metadata.UID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := readInt(t, filepath.Join(mem, "memory.limit_in_bytes")), 128*mi+overMem; got != want {
		t.Errorf("pod memory limit %d, want %d (128Mi + overhead)", got, want)
	}
	cpu, err := podCgroupDir("cpu", p.Status.QOSClass, p.Metadata.UID)
	if err != nil {
		t.Fatal(err)
	}
	period := readInt(t, filepath.Join(cpu, "cpu.cfs_period_us"))
	if got, want := readInt(t, filepath.Join(cpu, "cpu.cfs_quota_us")), (500+overCPU)*period/1000; got != want {
		t.Errorf("pod cpu quota %d, want %d (500m + overhead at period %d)", got, want, period)
	}
	t.Logf("pod cgroup %s: memory limit %d MiB, used %d MiB (peak %d MiB); cpu quota %d per %d µs",
		p.Status.QOSClass, readInt(t, filepath.Join(mem, "memory.limit_in_bytes"))/mi,
		readInt(t, filepath.Join(mem, "memory.usage_in_bytes"))/mi, readInt(t, filepath.Join(mem, "memory.max_usage_in_bytes"))/mi,
		readInt(t, filepath.Join(cpu, "cpu.cfs_quota_us")), period)
	comms := cgroupComms(t, mem)
	t.Logf("processes in the pod's memory cgroup: %v", comms)
	want := []string{"sleep"}
	if class == "veil" {
		want = []string{"qemu-system-x86", "virtiofsd", "vhost-device-vs"}
		if comms["sleep"] != 0 {
			t.Errorf("a container process runs on the host: %v", comms)
		}
	}
	for _, w := range want {
		if comms[w] == 0 {
			t.Errorf("%s is not in the pod's cgroup %s: %v", w, mem, comms)
		}
	}
}

const webCommand = `["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && echo web started && exec httpd -f -p 8080 -h /www"]`

// testStreaming: kubectl logs, exec (plain, with stdin, with a terminal)
// and port-forward, all through the API server and the kubelet.
func testStreaming(t *testing.T, s *suite, class string) {
	s.apply(t, podHead+`  terminationGracePeriodSeconds: 5
  containers:
  - name: web
    image: {{.Image}}
    command: `+webCommand+`
    ports:
    - containerPort: 8080
`, class, map[string]string{"Name": "web"})
	pod := name("web", class)
	s.waitReady(t, pod)
	eventually(t, "kubectl logs", time.Minute, func() error {
		out, err := s.k.Kubectl(s.ctx, "logs", pod)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "web started") {
			return fmt.Errorf("logs %q", out)
		}
		return nil
	})
	if out := s.kubectl(t, "exec", pod, "--", "cat", "/www/index.html"); strings.TrimSpace(out) != "hello-from-pod" {
		t.Errorf("kubectl exec cat: %q", out)
	}
	cmd := s.k.KubectlCmd(s.ctx, "exec", "-i", pod, "--", "sh", "-c", "cat; echo done")
	cmd.Stdin = strings.NewReader("piped\n")
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "piped\ndone\n" {
		t.Errorf("kubectl exec -i: %q, %v", out, err)
	}
	if out := execTTY(t, s, pod, "echo $((6*7)); tty; exit\n"); !strings.Contains(out, "42") || !strings.Contains(out, "/dev/pts/") {
		t.Errorf("kubectl exec -it: %q", out)
	}
	port := map[string]string{"runc": "18081", "veil": "18082"}[class]
	pf := s.k.KubectlCmd(s.ctx, "port-forward", "pod/"+pod, port+":8080")
	stdout, err := pf.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pf.Process.Kill(); _ = pf.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(line, "Forwarding from 127.0.0.1:"+port) {
		t.Fatalf("port-forward said %q: %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	client := &http.Client{Transport: &http.Transport{DialContext: s.k.C.DialContext}, Timeout: 30 * time.Second}
	resp, err := client.Get("http://127.0.0.1:" + port + "/")
	if err != nil {
		t.Fatalf("GET through port-forward: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if strings.TrimSpace(string(body)) != "hello-from-pod" {
		t.Errorf("port-forward answered %q", body)
	}
}

// execTTY runs `kubectl exec -it pod -- sh` on a terminal, types input and
// returns what the terminal showed.
func execTTY(t *testing.T, s *suite, pod, input string) string {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ptmx.Close() }()
	cmd := s.k.KubectlCmd(s.ctx, "exec", "-it", pod, "--", "sh")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	if err := cmd.Start(); err != nil {
		_ = tty.Close()
		t.Fatal(err)
	}
	_ = tty.Close()
	if _, err := io.WriteString(ptmx, input); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(&out, ptmx) // ends with EIO once kubectl exits
		close(done)
	}()
	if err := cmd.Wait(); err != nil {
		t.Errorf("kubectl exec -it: %v", err)
	}
	// kubectl and our copy of the terminal are closed: the copy drains
	// what is left and ends.
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the terminal did not close after kubectl exited")
	}
	return out.String()
}
