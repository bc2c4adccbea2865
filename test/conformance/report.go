package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// shortfalls lists the specs that pass with the reference run but not
// with run (failed, skipped or absent), sorted, each with run's outcome.
// Specs critest skipped as containerd's own discrepancies are not the
// handler's shortfalls.
func shortfalls(ref, run *Run) []string {
	var out []string
	for name, o := range ref.Specs {
		if o != Passed || run.Discrepancies[name] != "" {
			continue
		}
		got, ok := run.Specs[name]
		switch {
		case !ok:
			out = append(out, name+" (not run)")
		case got != Passed:
			out = append(out, name+" ("+string(got)+")")
		}
	}
	slices.Sort(out)
	return out
}

// specName strips the " (outcome)" suffix shortfalls adds.
func specName(shortfall string) string {
	if i := strings.LastIndex(shortfall, " ("); i >= 0 {
		return shortfall[:i]
	}
	return shortfall
}

// splitKnown separates shortfalls listed in known (spec names) from new
// ones, and returns the known specs that no longer fall short.
func splitKnown(short []string, known map[string]bool) (newOnes, fixed []string) {
	seen := map[string]bool{}
	for _, s := range short {
		n := specName(s)
		seen[n] = true
		if !known[n] {
			newOnes = append(newOnes, s)
		}
	}
	for k := range known {
		if !seen[k] {
			fixed = append(fixed, k)
		}
	}
	slices.Sort(fixed)
	return newOnes, fixed
}

// report renders the Markdown report: one table row per run, then, for
// each run other than the reference, the specs it falls short on.
func report(runs []*Run, ref string, wall map[string]time.Duration, filter string) (string, []string) {
	var b strings.Builder
	b.WriteString("# CRI conformance (critest)\n\n")
	if filter != "" {
		fmt.Fprintf(&b, "Subset: %s\n\n", filter)
	}
	b.WriteString("| handler | passed | failed | skipped | total | wall time |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %s |\n", r.Handler, r.Count(Passed), r.Count(Failed), r.Count(Skipped),
			len(r.Specs), wall[r.Handler].Round(time.Second))
	}
	var refRun *Run
	for _, r := range runs {
		if r.Handler == ref {
			refRun = r
		}
	}
	var all []string
	for _, r := range runs {
		if refRun == nil || r == refRun {
			continue
		}
		short := shortfalls(refRun, r)
		all = append(all, short...)
		fmt.Fprintf(&b, "\n## Passing on %s, not on %s: %d\n\n", ref, r.Handler, len(short))
		for _, s := range short {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	for _, r := range runs {
		if len(r.Discrepancies) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## Skipped by critest on %s as containerd's own discrepancies (timing; not shortfalls): %d\n\n", r.Handler, len(r.Discrepancies))
		names := make([]string, 0, len(r.Discrepancies))
		for n := range r.Discrepancies {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	for _, r := range runs {
		var failed []string
		for name, o := range r.Specs {
			if o == Failed {
				failed = append(failed, name)
			}
		}
		slices.Sort(failed)
		if len(failed) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## Failed on %s: %d\n\n", r.Handler, len(failed))
		for _, s := range failed {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	return b.String(), all
}
