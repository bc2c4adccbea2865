package kubernetes

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

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
