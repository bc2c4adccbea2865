package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cpuTree makes a fake sysfs cpu directory: cpu0 without an online file,
// the others with the given states.
func cpuTree(t *testing.T, states ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "cpu0"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, st := range states {
		d := filepath.Join(dir, "cpu"+string(rune('1'+i)))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "online"), []byte(st+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Not CPUs.
	if err := os.MkdirAll(filepath.Join(dir, "cpufreq"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestOnlineCPUs(t *testing.T) {
	for _, tc := range []struct {
		name       string
		states     []string
		want       int
		wantOnline int
		wantFiles  []string // online file contents of cpu1..
		wantErr    string
	}{
		{name: "already enough", states: []string{"0", "0"}, want: 1, wantOnline: 1, wantFiles: []string{"0", "0"}},
		{name: "online one more", states: []string{"0", "0"}, want: 2, wantOnline: 2, wantFiles: []string{"1", "0"}},
		{name: "online all", states: []string{"0", "1", "0"}, want: 4, wantOnline: 4, wantFiles: []string{"1", "1", "1"}},
		{name: "more than present", states: []string{"0"}, want: 3, wantOnline: 1, wantErr: "the guest has 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := cpuTree(t, tc.states...)
			got, err := onlineCPUs(context.Background(), dir, tc.want)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.wantOnline {
				t.Fatalf("onlineCPUs = %d, %v; want %d", got, err, tc.wantOnline)
			}
			for i, w := range tc.wantFiles {
				b, _ := os.ReadFile(filepath.Join(dir, "cpu"+string(rune('1'+i)), "online"))
				if strings.TrimSpace(string(b)) != w {
					t.Errorf("cpu%d online = %q, want %q", i+1, b, w)
				}
			}
		})
	}
}
