package console

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects what Follow writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the output is want.
func (s *syncBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if s.String() == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("followed %q, want %q", s.String(), want)
}

// TestFollow: Follow prints the kept console, then what a Log goes on
// writing, escaped, across rotations and a restart, and ends when asked
// or when the directory goes.
func TestFollow(t *testing.T) {
	type step struct {
		write   string // through the Log
		restart bool   // Create the Log again first (a new boot)
		want    string // everything followed so far
	}
	cases := []struct {
		name  string
		kept  []string // written before Follow starts
		steps []step
		end   string // "cancel" or "remove"
	}{
		{name: "kept console then appends", kept: []string{"boot\n"}, end: "cancel", steps: []step{
			{want: "boot\n"},
			{write: "agent\x1b[0m\n", want: "boot\nagent\\x1b[0m\n"},
		}},
		{name: "kept rotated half first", kept: []string{"0123456789abcdef", "older\n"}, end: "remove", steps: []step{
			{want: "0123456789abcdefolder\n"},
		}},
		{name: "across rotations", kept: []string{"l1\n"}, end: "cancel", steps: []step{
			{want: "l1\n"},
			{write: "l2 is longer\n", want: "l1\nl2 is longer\n"},                   // rotates
			{write: "l3 rotates too\n", want: "l1\nl2 is longer\nl3 rotates too\n"}, // rotates again
			{write: "l4\r\n", want: "l1\nl2 is longer\nl3 rotates too\nl4\n"},
		}},
		{name: "console created anew", kept: []string{"first boot\n"}, end: "remove", steps: []step{
			{want: "first boot\n"},
			{restart: true, write: "again\n", want: "first boot\nagain\n"},
		}},
		{name: "waits for the console", end: "cancel", steps: []step{
			{want: ""},
			{restart: true, write: "late\n", want: "late\n"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "sb")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "console.log")
			var l *Log
			if tc.kept != nil {
				var err error
				if l, err = Create(path, 32); err != nil {
					t.Fatal(err)
				}
				for _, w := range tc.kept {
					_, _ = l.Write([]byte(w))
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out := &syncBuffer{}
			done := make(chan error, 1)
			go func() { done <- Follow(ctx, path, out) }()
			for _, s := range tc.steps {
				if s.restart {
					_ = l.Close()
					var err error
					if l, err = Create(path, 32); err != nil {
						t.Fatal(err)
					}
				}
				if s.write != "" {
					if _, err := l.Write([]byte(s.write)); err != nil {
						t.Fatal(err)
					}
				}
				out.waitFor(t, s.want)
			}
			_ = l.Close()
			switch tc.end {
			case "cancel":
				cancel()
			case "remove":
				_ = os.RemoveAll(dir)
			}
			select {
			case err := <-done:
				if err != nil || ctx.Err() == context.DeadlineExceeded {
					t.Fatalf("Follow = %v (ctx %v)", err, ctx.Err())
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Follow did not end")
			}
		})
	}
}

// TestFollowFlood: a guest writing much more than the bound while it is
// followed gives an escaped stream up to its end, even if parts are
// skipped (lines may then be joined).
func TestFollowFlood(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "console.log")
	l, err := Create(path, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, path, out) }()
	for i := 0; i < 2000; i++ {
		_, _ = l.Write([]byte(strings.Repeat("=", 31) + "\x1b\n")) // halves end inside lines
		if i%100 == 0 {
			time.Sleep(followInterval / 4)
		}
	}
	_, _ = l.Write([]byte("end\n"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.HasSuffix(out.String(), "end\n") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.HasSuffix(got, "end\n") || strings.Contains(got, "\x1b") {
		t.Fatalf("followed %d bytes ending %q", len(got), got[max(0, len(got)-80):])
	}
	for _, line := range strings.Split(strings.TrimSuffix(got, "\nend\n"), "\n") {
		if strings.Trim(strings.ReplaceAll(line, `\x1b`, ""), "=") != "" {
			t.Fatalf("unexpected line %q", line)
		}
	}
}
