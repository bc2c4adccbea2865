package console

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), (MaxRead+4096)/16)
	cases := []struct {
		name    string
		setup   func(t *testing.T, path string)
		want    []byte
		wantErr string
	}{
		{name: "missing reads as empty", want: nil},
		{name: "current only", setup: func(t *testing.T, path string) { writeFile(t, path, "boot\n") }, want: []byte("boot\n")},
		{name: "rotated half first", setup: func(t *testing.T, path string) {
			writeFile(t, path+".1", "older\n")
			writeFile(t, path, "newer\n")
		}, want: []byte("older\nnewer\n")},
		{name: "rotated half only", setup: func(t *testing.T, path string) { writeFile(t, path+".1", "older\n") }, want: []byte("older\n")},
		{name: "same file twice read once", setup: func(t *testing.T, path string) {
			writeFile(t, path, "once\n")
			if err := os.Link(path, path+".1"); err != nil {
				t.Fatal(err)
			}
		}, want: []byte("once\n")},
		{name: "bounded to the newest bytes", setup: func(t *testing.T, path string) {
			writeFile(t, path+".1", "older\n")
			writeFile(t, path, string(big))
		}, want: big[len(big)-MaxRead:]},
		{name: "symlink refused", wantErr: "too many levels of symbolic links", setup: func(t *testing.T, path string) {
			writeFile(t, path+".secret", "host secret")
			if err := os.Symlink(path+".secret", path); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "symlinked half refused", wantErr: "too many levels of symbolic links", setup: func(t *testing.T, path string) {
			writeFile(t, path+".secret", "host secret")
			writeFile(t, path, "newer\n")
			if err := os.Symlink(path+".secret", path+".1"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "FIFO refused without blocking", wantErr: "not a regular file", setup: func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "directory refused", wantErr: "not a regular file", setup: func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "console.log")
			if tc.setup != nil {
				tc.setup(t, path)
			}
			done := make(chan struct{})
			var got []byte
			var err error
			go func() { got, err = Read(path); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Read blocked")
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || bytes.Contains(got, []byte("secret")) {
					t.Fatalf("Read = %q, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("Read = %.80q (%d bytes), %v; want %.80q (%d bytes)", got, len(got), err, tc.want, len(tc.want))
			}
		})
	}
}

func TestTail(t *testing.T) {
	long := strings.Repeat("é", 3000) // 6000 bytes, one line
	cases := []struct {
		name   string
		writes []string // through a Log of bound 32; none: no file
		raw    string   // written as path instead, when set
		n      int
		want   string
	}{
		{name: "missing", n: 3, want: "(no console output)"},
		{name: "empty", writes: []string{""}, n: 3, want: "(no console output)"},
		{name: "only newlines", writes: []string{"\r\n\n"}, n: 3, want: "(no console output)"},
		{name: "fewer lines than asked", writes: []string{"l1\nl2\n"}, n: 5, want: "l1\nl2"},
		{name: "last lines", writes: []string{"l1\nl2\nl3\nl4\n"}, n: 2, want: "l3\nl4"},
		{name: "no final newline", writes: []string{"l1\nl2\nlogin:"}, n: 2, want: "l2\nlogin:"},
		{name: "across the rotation", writes: []string{"l1\nl2\nl3\nl4\nl5\n", "l6\nl7\x1b[31m\n"}, n: 3, want: "l5\nl6\nl7\\x1b[31m"},
		{name: "escaped, CRLF", writes: []string{"ok\r\npanic\x07\x00\r\n"}, n: 2, want: "ok\npanic\\x07\\x00"},
		{name: "zero lines", writes: []string{"l1\n"}, n: 0, want: ""},
		{name: "one endless line is cut", raw: "boot\n" + long, n: 3, want: "..." + long[len(long)-tailMaxBytes:]},
		{name: "cut inside a UTF-8 sequence", raw: long + "x", n: 1, want: "..." + long[len(long)-tailMaxBytes+2:] + "x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "console.log")
			if tc.raw != "" {
				writeFile(t, path, tc.raw)
			}
			if tc.writes != nil {
				l, err := Create(path, 32)
				if err != nil {
					t.Fatal(err)
				}
				for _, w := range tc.writes {
					_, _ = l.Write([]byte(w))
				}
				_ = l.Close()
			}
			if got := Tail(path, tc.n); got != tc.want {
				t.Fatalf("Tail = %.100q, want %.100q", got, tc.want)
			}
		})
	}
}

func TestTailUnreadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if got := Tail(path, 3); !strings.HasPrefix(got, "(console: ") || !strings.Contains(got, "not a regular file") {
		t.Fatalf("Tail = %q", got)
	}
}
