package kubernetes

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// podCgroupDir is pod uid's cgroup directory in the v1 hierarchy of
// controller (the kubelet's cgroupfs layout for the pod's QoS class).
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
