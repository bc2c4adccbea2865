package kubernetes

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

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
