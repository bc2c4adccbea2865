package sandbox

import (
	"os"
	"path/filepath"
	"testing"
)

func TestConsoleWatch(t *testing.T) {
	cases := []struct {
		name   string
		writes []string
		want   []bool // seen() after each write
	}{
		{name: "absent", writes: []string{"booting\n", "more\n"}, want: []bool{false, false}},
		{name: "in one write", writes: []string{"x\nlevel=info msg=\"agent serving\"\n"}, want: []bool{true}},
		{name: "split across writes", writes: []string{"msg=\"agent ser", "ving\"\n"}, want: []bool{false, true}},
		{name: "no file yet", writes: nil, want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "console.log")
			w := &consoleWatch{path: p, marker: []byte(agentServingMarker)}
			if w.seen() {
				t.Fatal("seen before any write")
			}
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for i, s := range tc.writes {
				if _, err := f.WriteString(s); err != nil {
					t.Fatal(err)
				}
				if got := w.seen(); got != tc.want[i] {
					t.Fatalf("after write %d: seen = %v, want %v", i, got, tc.want[i])
				}
			}
		})
	}
}
