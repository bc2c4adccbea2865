package console

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// scriptReader returns its chunks one per Read, calling before[i] (when
// set) before returning chunk i, then err (io.EOF when nil).
type scriptReader struct {
	chunks []string
	before map[int]func()
	err    error
	next   int
}

func (r *scriptReader) Read(p []byte) (int, error) {
	if r.next == len(r.chunks) {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	if f := r.before[r.next]; f != nil {
		f()
	}
	n := copy(p, r.chunks[r.next])
	r.next++
	return n, nil
}

func TestDrain(t *testing.T) {
	errBroken := errors.New("connection reset")
	type env struct {
		t         *testing.T
		dir, path string
		l         *Log
	}
	// must fails the test from a hook, which runs in the test's goroutine.
	must := func(e *env, err error) {
		if err != nil {
			e.t.Fatal(err)
		}
	}
	cases := []struct {
		name    string
		max     int64
		chunks  []string
		before  func(e *env) map[int]func()
		readErr error
		wantErr func(error) bool
		want    string // Read afterwards; "-" when not checked
	}{
		{name: "copies until EOF", max: 1 << 20, chunks: []string{"boot\n", "login:"}, wantErr: noErr, want: "boot\nlogin:"},
		{name: "keeps the bound", max: 8, chunks: []string{"0123", "4567", "89ab", "cd"}, wantErr: noErr, want: "89abcd"},
		{name: "keeps reading after a write error", max: 8,
			chunks: []string{"0123", "4567", "89ab", "cdef", "ghij"},
			// The directory goes: the next rotation cannot make its files.
			before:  func(e *env) map[int]func() { return map[int]func(){1: func() { must(e, os.RemoveAll(e.dir)) }} },
			wantErr: isNotExist, want: "-"},
		{name: "writes again once it can", max: 8,
			chunks: []string{"0123", "4567", "89ab", "cdef", "ghij"},
			before: func(e *env) map[int]func() {
				return map[int]func(){
					1: func() { must(e, os.RemoveAll(e.dir)) },
					3: func() { must(e, os.MkdirAll(e.dir, 0o700)) },
				}
			},
			wantErr: isNotExist, want: "cdefghij"},
		{name: "after Close discards silently", max: 64, chunks: []string{"kept", "late"},
			before:  func(e *env) map[int]func() { return map[int]func(){1: func() { _ = e.l.Close() }} },
			wantErr: noErr, want: "kept"},
		{name: "read error", max: 64, chunks: []string{"half a line"}, readErr: errBroken,
			wantErr: func(err error) bool { return errors.Is(err, errBroken) }, want: "half a line"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{t: t, dir: filepath.Join(t.TempDir(), "sb")}
			e.path = filepath.Join(e.dir, "console.log")
			if err := os.Mkdir(e.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			var err error
			if e.l, err = Create(e.path, tc.max); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = e.l.Close() }()
			r := &scriptReader{chunks: tc.chunks, err: tc.readErr}
			if tc.before != nil {
				r.before = tc.before(e)
			}
			err = e.l.Drain(context.Background(), r)
			if !tc.wantErr(err) {
				t.Fatalf("Drain: %v", err)
			}
			if r.next != len(r.chunks) {
				t.Fatalf("Drain stopped reading with %d chunks left", len(r.chunks)-r.next)
			}
			if tc.want == "-" {
				return
			}
			if got, err := Read(e.path); err != nil || string(got) != tc.want {
				t.Fatalf("Read = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func noErr(err error) bool      { return err == nil }
func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }

// TestDrainContext: ending ctx interrupts a Drain blocked reading a
// connection that stays silent.
func TestDrainContext(t *testing.T) {
	l, err := Create(filepath.Join(t.TempDir(), "console.log"), 64)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	guest, host := net.Pipe()
	defer func() { _ = guest.Close() }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Drain(ctx, host) }()
	if _, err := guest.Write([]byte("boot\n")); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Drain = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Drain still blocked after cancel")
	}
}

// TestDrainNeverBlocksTheGuest: a guest flooding its console through a
// pipe while the copy cannot be written gets through to EOF.
func TestDrainNeverBlocksTheGuest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sb")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := Create(filepath.Join(dir, "console.log"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	_ = os.RemoveAll(dir)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		line := []byte(strings.Repeat("flood", 20) + "\n")
		var err error
		for i := 0; i < 20000 && err == nil; i++ {
			_, err = pw.Write(line)
		}
		_ = pw.Close()
		wrote <- err
	}()
	done := make(chan error, 1)
	go func() { done <- l.Drain(context.Background(), pr) }()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the guest's writes blocked")
	}
	if err := <-done; !isNotExist(err) {
		t.Fatalf("Drain = %v, want the write error", err)
	}
}
