package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const sampleJUnit = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="5">
  <testsuite name="CRI" tests="5" time="12.5">
    <testcase name="[BeforeSuite]" status="passed"></testcase>
    <testcase name="[It] pods run" status="passed"></testcase>
    <testcase name="[It] exec works" status="failed"><failure message="boom"></failure></testcase>
    <testcase name="[It] apparmor" status="skipped"><skipped message="skipped - AppArmor is disabled on this host"></skipped></testcase>
    <testcase name="[It] benchmark" status="skipped"><skipped message="skipped"></skipped></testcase>
    <testcase name="[It] nri sync" status="skipped"><skipped message="skipped - spec discrepancy: containerd loses containers created while a late-joining plugin's Synchronize is in progress"></skipped></testcase>
  </testsuite>
</testsuites>`

func writeJUnit(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "junit.xml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseJUnit(t *testing.T) {
	r, err := parseJUnit(writeJUnit(t, sampleJUnit), "runc")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Outcome{
		"[BeforeSuite]":   Passed,
		"[It] pods run":   Passed,
		"[It] exec works": Failed,
		"[It] apparmor":   Skipped,
		"[It] nri sync":   Skipped,
	}
	if !reflect.DeepEqual(r.Specs, want) {
		t.Errorf("specs = %v, want %v", r.Specs, want)
	}
	if _, ok := r.Discrepancies["[It] nri sync"]; !ok || len(r.Discrepancies) != 1 {
		t.Errorf("discrepancies = %v, want the nri sync spec only", r.Discrepancies)
	}
	if r.Seconds != 12.5 {
		t.Errorf("seconds = %v", r.Seconds)
	}
	tests := []struct {
		name string
		o    Outcome
		want int
	}{
		{"passed", Passed, 2},
		{"failed", Failed, 1},
		{"skipped", Skipped, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.Count(tc.o); got != tc.want {
				t.Errorf("Count(%s) = %d, want %d", tc.o, got, tc.want)
			}
		})
	}
}

func TestParseJUnitErrors(t *testing.T) {
	tests := []struct {
		name string
		path string
	}{
		{"missing", filepath.Join(t.TempDir(), "none.xml")},
		{"malformed", writeJUnit(t, "<testsuites><testsuite>")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseJUnit(tc.path, "x"); err == nil {
				t.Error("want an error")
			}
		})
	}
}

func TestShortfalls(t *testing.T) {
	ref := &Run{Handler: "runc", Specs: map[string]Outcome{"a": Passed, "b": Passed, "c": Passed, "d": Failed, "e": Passed}}
	veil := &Run{Handler: "veil", Specs: map[string]Outcome{"a": Passed, "b": Failed, "c": Skipped, "d": Failed, "f": Skipped},
		Discrepancies: map[string]string{"f": "skipped - spec discrepancy: containerd ..."}}
	ref.Specs["f"] = Passed
	got := shortfalls(ref, veil)
	want := []string{"b (failed)", "c (skipped)", "e (not run)"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("shortfalls = %q, want %q", got, want)
	}
	text, all := report([]*Run{ref, veil}, "runc", map[string]time.Duration{"runc": time.Minute}, "")
	if !reflect.DeepEqual(all, want) {
		t.Errorf("report shortfalls = %q, want %q", all, want)
	}
	for _, s := range []string{"| runc | 5 | 1 | 0 | 6 | 1m0s |", "| veil | 1 | 2 | 2 | 5 |", "Passing on runc, not on veil: 3", "- e (not run)", "containerd's own discrepancies (timing; not shortfalls): 1"} {
		if !strings.Contains(text, s) {
			t.Errorf("report lacks %q:\n%s", s, text)
		}
	}
}

func TestSplitKnown(t *testing.T) {
	short := []string{"a (failed)", "b (skipped)", "c (not run)"}
	tests := []struct {
		name             string
		known            map[string]bool
		wantNew, wantFix []string
	}{
		{"none known", nil, short, nil},
		{"some known", map[string]bool{"a": true, "c": true}, []string{"b (skipped)"}, nil},
		{"fixed one", map[string]bool{"a": true, "b": true, "c": true, "z": true}, nil, []string{"z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gotNew, gotFix := splitKnown(short, tc.known)
			if !reflect.DeepEqual(gotNew, tc.wantNew) || !reflect.DeepEqual(gotFix, tc.wantFix) {
				t.Errorf("splitKnown = %q, %q; want %q, %q", gotNew, gotFix, tc.wantNew, tc.wantFix)
			}
		})
	}
}
