package kubernetes

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

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
