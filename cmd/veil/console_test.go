package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestSandboxConsoleCommand(t *testing.T) {
	w := newWorld(t)
	dir := w.sandbox(t, "pod-a", 100, false)
	log := filepath.Join(dir, "console.log")
	writeFile(t, log+".1", "[    0.0] Linux version 6.1\n")
	writeFile(t, log, "\x1b]0;owned\x07\x1b[2Jagent serving \xff\r\n")
	w.sandbox(t, "pod-b", 200, false)
	runCases(t, w, []cmdCase{
		{name: "rotated half first, escaped", args: []string{"sandbox", "console", "pod-a"},
			checkOut: func(t *testing.T, out string) {
				want := "[    0.0] Linux version 6.1\n" + `\x1b]0;owned\x07\x1b[2Jagent serving \xff` + "\n"
				if out != want {
					t.Fatalf("stdout %q, want %q", out, want)
				}
			}},
		{name: "plain console", args: []string{"sandbox", "console", "pod-b"}, checkOut: func(t *testing.T, out string) {
			if out != "Linux version 6.1\nagent serving\n" {
				t.Fatalf("stdout %q", out)
			}
		}},
		{name: "unknown sandbox", args: []string{"sandbox", "console", "nope"}, code: 1, errOut: []string{"not found"}},
		{name: "no id", args: []string{"sandbox", "console"}, code: 1},
	})
}

// TestSandboxConsoleFollow: --follow prints the kept console, escaped,
// then what the guest appends, until interrupted.
func TestSandboxConsoleFollow(t *testing.T) {
	w := newWorld(t)
	dir := w.sandbox(t, "pod-a", 100, false)
	log := filepath.Join(dir, "console.log")
	writeFile(t, log, "boot\x1b[m\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{}
	cmd := newRootCommandEnv(w.env())
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs([]string{"--config", w.config, "sandbox", "console", "--follow", "pod-a"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	out.waitFor(t, "boot\\x1b[m\n")
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte("more\a\n"))
	_ = f.Close()
	out.waitFor(t, "boot\\x1b[m\nmore\\x07\n")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("--follow did not end when interrupted")
	}
}

// lockedBuffer is an output written and read concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		l.mu.Lock()
		got := l.b.String()
		l.mu.Unlock()
		if got == want {
			return
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Fatalf("output %q, want %q", l.b.String(), want)
}
