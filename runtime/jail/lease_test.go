package jail

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestAcquire(t *testing.T) {
	cases := []struct {
		name  string
		count uint32
		ids   []string
		want  int // leases granted before ErrRangeExhausted
	}{
		{name: "one sandbox", count: 4, ids: []string{"a"}, want: 1},
		{name: "distinct uids up to the range", count: 3, ids: []string{"a", "b", "c"}, want: 3},
		{name: "range exhausted", count: 2, ids: []string{"a", "b", "c"}, want: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			seen := map[uint32]bool{}
			var leases []*Lease
			for i, id := range tc.ids {
				l, err := Acquire(dir, 1000, tc.count, id)
				if i >= tc.want {
					if !errors.Is(err, ErrRangeExhausted) {
						t.Fatalf("lease %d: %v, want ErrRangeExhausted", i, err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if l.UID < 1000 || l.UID >= 1000+tc.count || seen[l.UID] {
					t.Fatalf("uid %d: outside the range or given twice (%v)", l.UID, seen)
				}
				seen[l.UID] = true
				leases = append(leases, l)
			}
			for _, l := range leases {
				if err := l.Release(); err != nil {
					t.Fatal(err)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".uid-*")); len(left) > 0 {
				t.Fatalf("lease files left: %v", left)
			}
		})
	}
}

// TestReleaseStale: a lease file nobody holds (its shim died) is
// reused, and ReleaseStale removes it; a held one stays.
func TestReleaseStale(t *testing.T) {
	dir := t.TempDir()
	held, err := Acquire(dir, 2000, 1, "held")
	if err != nil {
		t.Fatal(err)
	}
	if err := ReleaseStale(dir, held.UID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(held.path); err != nil {
		t.Fatalf("a held lease was removed: %v", err)
	}
	_ = held.f.Close() // the shim dies: the kernel drops its lock
	held.f = nil
	again, err := Acquire(dir, 2000, 1, "next")
	if err != nil || again.UID != 2000 {
		t.Fatalf("stale lease not reused: %v %v", again, err)
	}
	_ = again.f.Close()
	again.f = nil
	if err := ReleaseStale(dir, 2000); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(held.path); !os.IsNotExist(err) {
		t.Fatalf("stale lease file still there: %v", err)
	}
}
