package statedir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStartsJournal(t *testing.T) {
	dir := t.TempDir()
	before := StartRecord{Sandbox: "old", Mode: "cold", OK: true, Seconds: 1}
	if err := AppendStart(dir, before); err != nil {
		t.Fatal(err)
	}
	r := NewStartsReader(dir)
	defer func() { _ = r.Close() }()
	ids := func(recs []StartRecord) string {
		var s []string
		for _, rec := range recs {
			s = append(s, rec.Sandbox)
		}
		return strings.Join(s, ",")
	}
	read := func() string {
		t.Helper()
		recs, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		return ids(recs)
	}
	if got := read(); got != "" {
		t.Errorf("a new reader read %q: only starts after it opened count", got)
	}
	ok := StartRecord{Sandbox: "a", Mode: "warm", OK: true, Seconds: 0.1, Stages: []StartStage{{Name: "adopt VM", Seconds: 0.004}}}
	failed := StartRecord{Sandbox: "b", Mode: "cold", Step: "start VM", Seconds: 30}
	for _, rec := range []StartRecord{ok, failed} {
		if err := AppendStart(dir, rec); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if ids(recs) != "a,b" || recs[0].Stages[0].Name != "adopt VM" || recs[1].OK || recs[1].Step != "start VM" {
		t.Errorf("read %+v", recs)
	}
	// A half-written line waits for its end; garbage is skipped.
	path := filepath.Join(dir, StartsFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("not json\n{\"sandbox\":\"c\",")
	if got := read(); got != "" {
		t.Errorf("read %q from garbage and half a line", got)
	}
	_, _ = f.WriteString("\"mode\":\"cold\",\"ok\":true}\n")
	_ = f.Close()
	if got := read(); got != "c" {
		t.Errorf("read %q, want the completed line c", got)
	}
	// Rotation: the rest of the old file, then the new one from its start.
	big := StartRecord{Sandbox: "d", Mode: "cold", OK: true, Stages: make([]StartStage, 20)}
	for i := range big.Stages {
		big.Stages[i] = StartStage{Name: strings.Repeat("s", 100), Seconds: 1}
	}
	n := 0
	for {
		if err := AppendStart(dir, big); err != nil {
			t.Fatal(err)
		}
		n++
		if _, err := os.Stat(path + ".1"); err == nil {
			break
		}
	}
	if err := AppendStart(dir, StartRecord{Sandbox: "e", Mode: "warm", OK: true}); err != nil {
		t.Fatal(err)
	}
	recs, err = r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n+1 || recs[len(recs)-1].Sandbox != "e" {
		t.Errorf("after rotation read %d records ending %q, want %d ending e", len(recs), recs[len(recs)-1].Sandbox, n+1)
	}
	// A symlink in the journal's place is refused.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", path); err != nil {
		t.Fatal(err)
	}
	if err := AppendStart(dir, ok); err == nil {
		t.Error("appended through a symlink")
	}
}
