package inspect

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestConsole(t *testing.T) {
	f := newFixture(t)
	f.sandbox(t, "sb", nil, nil, false)
	cases := []struct {
		name, id, want string
		wantErr        bool
	}{
		{name: "prints the log", id: "sb", want: "boot\nagent serving\n"},
		{name: "unknown sandbox", id: "nope", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := f.reader().Console(context.Background(), tc.id, &buf, false)
			if (err != nil) != tc.wantErr || buf.String() != tc.want {
				t.Fatalf("%q, %v", buf.String(), err)
			}
		})
	}
}

func TestConsoleFollow(t *testing.T) {
	f := newFixture(t)
	dir := f.sandbox(t, "sb", nil, nil, false)
	cases := []struct {
		name string
		end  func(cancel context.CancelFunc) // how following ends
	}{
		{name: "until cancelled", end: func(cancel context.CancelFunc) { cancel() }},
		{name: "until the sandbox is gone", end: func(context.CancelFunc) { must(t, os.RemoveAll(dir)) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			log := filepath.Join(dir, "console.log")
			must(t, os.MkdirAll(dir, 0o700))
			must(t, os.WriteFile(log, []byte("first\n"), 0o640))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			w := &notifyWriter{}
			seen := w.expect("first\n")
			done := make(chan error, 1)
			go func() { done <- f.reader().Console(ctx, "sb", w, true) }()
			wait(t, seen, "first line")
			seen = w.expect("second\n")
			fh, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			fh.Write([]byte("second\n"))
			fh.Close()
			wait(t, seen, "appended line")
			tc.end(cancel)
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

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5s", what)
	}
}
