package console

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kept is the bytes the files of the Log at path hold.
func kept(t testing.TB, path string) int64 {
	t.Helper()
	var n int64
	for _, p := range Files(path) {
		if st, err := os.Lstat(p); err == nil {
			n += st.Size()
		}
	}
	return n
}

func chars(n int) []string { return strings.Split(strings.Repeat("x", n-5)+"ABCDE", "") }

func TestLogBound(t *testing.T) {
	huge := strings.Repeat("0123456789", 1000) // 10,000 bytes
	cases := []struct {
		name   string
		max    int64
		writes []string
		want   string // what Read returns after the writes
	}{
		{name: "below the bound", max: 100, writes: []string{"abc", "def"}, want: "abcdef"},
		{name: "exactly a half", max: 8, writes: []string{"0123"}, want: "0123"},
		{name: "rotation keeps the newest", max: 8, writes: []string{"0123", "4567", "89"}, want: "456789"},
		{name: "write crossing a half", max: 8, writes: []string{"ab", "cde"}, want: "abcde"},
		{name: "many small writes", max: 10, writes: chars(95), want: "xxxxxABCDE"},
		{name: "many small writes, odd bound", max: 11, writes: chars(1000), want: "xxxxxABCDE"},
		{name: "one write larger than a half", max: 8, writes: []string{"abcdefghijkl"}, want: "ijkl"},
		{name: "one huge write", max: 4096, writes: []string{huge}, want: huge[len(huge)-2048:]},
		{name: "huge write after a partial half", max: 4096, writes: []string{"boot\n", huge}, want: "boot\n" + huge[len(huge)-2048:]},
		{name: "huge writes in a row", max: 4096, writes: []string{huge, huge, "tail"}, want: huge[len(huge)-2048:] + "tail"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "console.log")
			l, err := Create(path, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.writes {
				if n, err := l.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("Write(%d bytes) = %d, %v", len(w), n, err)
				}
				if got := kept(t, path); got > tc.max {
					t.Fatalf("%d bytes kept, bound %d", got, tc.max)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := Read(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("Read = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T, path string)
		max     int64
		wantErr bool
	}{
		{name: "fresh", max: 64},
		{name: "truncates path and removes a stale half", max: 64, setup: func(t *testing.T, path string) {
			writeFile(t, path+".1", "old boot")
			writeFile(t, path, "old boot too")
		}},
		{name: "refuses a symlink at path", max: 64, wantErr: true, setup: func(t *testing.T, path string) {
			target := filepath.Join(filepath.Dir(path), "target")
			writeFile(t, target, "host file")
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "refuses a bound too small", max: 1, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "console.log")
			if tc.setup != nil {
				tc.setup(t, path)
			}
			l, err := Create(path, tc.max)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Create: %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				if b, _ := os.ReadFile(filepath.Join(filepath.Dir(path), "target")); len(b) > 0 && string(b) != "host file" {
					t.Fatalf("symlink target changed: %q", b)
				}
				return
			}
			defer func() { _ = l.Close() }()
			if got, _ := Read(path); len(got) != 0 {
				t.Fatalf("Read = %q after Create", got)
			}
			st, err := os.Stat(path)
			if err != nil || st.Mode().Perm()&^0o640 != 0 {
				t.Fatalf("path: %v, %v", st, err)
			}
			if _, err := os.Lstat(path + ".1"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("stale half: %v", err)
			}
		})
	}
}

func TestLogClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	l, err := Create(path, 64)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = l.Write([]byte("kept"))
	for i := 0; i < 2; i++ {
		if err := l.Close(); err != nil {
			t.Fatalf("Close %d: %v", i, err)
		}
	}
	if _, err := l.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if got, _ := Read(path); string(got) != "kept" {
		t.Fatalf("Read = %q", got)
	}
	var nilLog *Log
	if err := nilLog.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLogWrite: throughput of the console copy at the default bound,
// for console lines and for the drain's full reads.
func BenchmarkLogWrite(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{
		{name: "line-80B", size: 80},
		{name: "read-32KiB", size: drainBuffer},
	} {
		b.Run(bc.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "console.log")
			const max = 1 << 20
			l, err := Create(path, max)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = l.Close() }()
			p := append(bytes.Repeat([]byte("flood-"), bc.size/6), '\n')[:bc.size]
			b.SetBytes(int64(len(p)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Write(p); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if n := kept(b, path); n > max {
				b.Fatalf("%d bytes kept, bound %d", n, max)
			}
		})
	}
}
