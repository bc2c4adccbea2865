package inspect

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConsole(t *testing.T) {
	cases := []struct {
		name    string
		id      string
		setup   func(t *testing.T, log string)
		want    string
		wantErr string
	}{
		{name: "prints the log", id: "sb", want: "boot\nagent serving\n"},
		{name: "rotated half first, escaped", id: "sb", setup: func(t *testing.T, log string) {
			must(t, os.WriteFile(log+".1", []byte("older\x1b[2J\n"), 0o640))
			must(t, os.WriteFile(log, []byte("newer \xe4\xb8\x96\x07\xff\r\n"), 0o640))
		}, want: "older\\x1b[2J\nnewer 世\\x07\\xff\n"},
		{name: "no console yet", id: "sb", setup: func(t *testing.T, log string) { must(t, os.Remove(log)) }, want: ""},
		{name: "symlinked console refused", id: "sb", wantErr: "symbolic links", setup: func(t *testing.T, log string) {
			must(t, os.Remove(log))
			must(t, os.Symlink("/etc/hostname", log))
		}},
		{name: "unknown sandbox", id: "nope", wantErr: "not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			dir := f.sandbox(t, "sb", nil, nil, false)
			if tc.setup != nil {
				tc.setup(t, filepath.Join(dir, "console.log"))
			}
			var buf bytes.Buffer
			err := f.reader().Console(context.Background(), tc.id, &buf, false)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Console: %v, want error %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || buf.String() != tc.want {
				t.Fatalf("Console = %q, %v; want %q", buf.String(), err, tc.want)
			}
		})
	}
}

func TestConsoleFollow(t *testing.T) {
	cases := []struct {
		name string
		// more writes what the guest goes on writing to log.
		more func(t *testing.T, log string)
		// want is printed after the kept first line.
		want string
		// end ends the following.
		end func(t *testing.T, cancel context.CancelFunc, dir string)
	}{
		{name: "appends, until cancelled", more: appendTo("second\n"), want: "second\n",
			end: func(_ *testing.T, cancel context.CancelFunc, _ string) { cancel() }},
		{name: "appends, until the sandbox is gone", more: appendTo("second\n"), want: "second\n",
			end: func(t *testing.T, _ context.CancelFunc, dir string) { must(t, os.RemoveAll(dir)) }},
		{name: "across a rotation, escaped", want: "after\\x07\n", more: func(t *testing.T, log string) {
			// Rotate as console.Log does, then write the new half.
			must(t, os.Rename(log, log+".1"))
			must(t, os.WriteFile(log, []byte("after\x07\n"), 0o640))
		}, end: func(_ *testing.T, cancel context.CancelFunc, _ string) { cancel() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			dir := f.sandbox(t, "sb", nil, nil, false)
			log := filepath.Join(dir, "console.log")
			must(t, os.WriteFile(log, []byte("first\n"), 0o640))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			w := &notifyWriter{}
			seen := w.expect("first\n")
			done := make(chan error, 1)
			go func() { done <- f.reader().Console(ctx, "sb", w, true) }()
			wait(t, seen, "kept console")
			seen = w.expect("first\n" + tc.want)
			tc.more(t, log)
			wait(t, seen, "what the guest wrote next")
			tc.end(t, cancel, dir)
			select {
			case err := <-done:
				if err != nil || ctx.Err() == context.DeadlineExceeded {
					t.Fatalf("follow: %v (ctx %v)", err, ctx.Err())
				}
			case <-time.After(5 * time.Second):
				t.Fatal("follow did not end")
			}
		})
	}
}

// appendTo appends s to the log as the guest would.
func appendTo(s string) func(t *testing.T, log string) {
	return func(t *testing.T, log string) {
		fh, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
		must(t, err)
		_, err = fh.Write([]byte(s))
		must(t, err)
		must(t, fh.Close())
	}
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5s", what)
	}
}
