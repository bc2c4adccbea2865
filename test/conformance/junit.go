package main

import (
	"encoding/xml"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Outcome is one spec's result in a run.
type Outcome string

const (
	Passed  Outcome = "passed"
	Failed  Outcome = "failed"
	Skipped Outcome = "skipped"
	// Filtered specs were not selected (focus, skip, critest's own
	// benchmark filter); they count nowhere.
	Filtered Outcome = "filtered"
)

// Run is one critest run's results: spec name to outcome.
type Run struct {
	Handler string
	Specs   map[string]Outcome
	// Seconds is the suite's wall time as the report gives it.
	Seconds float64
	// Discrepancies are the specs critest skipped because containerd
	// itself falls short of the spec (its skip message says "spec
	// discrepancy: containerd"), with that message. Whether critest sees
	// it depends on timing, not on the runtime handler, so they are not
	// shortfalls of the handler.
	Discrepancies map[string]string
}

// containerdDiscrepancy marks critest's skips for containerd's own
// shortcomings.
const containerdDiscrepancy = "spec discrepancy: containerd"

type junitSuites struct {
	Suites []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Time  string      `xml:"time,attr"`
	Cases []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name    string    `xml:"name,attr"`
	Status  string    `xml:"status,attr"`
	Failure *struct{} `xml:"failure"`
	Error   *struct{} `xml:"error"`
	Skipped *struct {
		Message string `xml:"message,attr"`
	} `xml:"skipped"`
}

// parseJUnit reads a Ginkgo JUnit report. Ginkgo's suite-level
// BeforeSuite/AfterSuite entries count like specs (a failed BeforeSuite
// is a failure of the run).
func parseJUnit(path, handler string) (*Run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JUnit report: %w", err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse JUnit report %s: %w", path, err)
	}
	r := &Run{Handler: handler, Specs: map[string]Outcome{}, Discrepancies: map[string]string{}}
	for _, s := range doc.Suites {
		if t, err := strconv.ParseFloat(s.Time, 64); err == nil {
			r.Seconds += t
		}
		for _, c := range s.Cases {
			o := outcome(c)
			if o == Filtered {
				continue
			}
			r.Specs[c.Name] = o
			if o == Skipped && c.Skipped != nil && strings.Contains(c.Skipped.Message, containerdDiscrepancy) {
				r.Discrepancies[c.Name] = c.Skipped.Message
			}
		}
	}
	return r, nil
}

// outcome maps a test case to an Outcome. Ginkgo marks specs its filters
// left out as skipped with the bare message "skipped"; a spec that
// skipped itself says "skipped - <reason>".
func outcome(c junitCase) Outcome {
	if c.Skipped != nil && c.Skipped.Message == "skipped" {
		return Filtered
	}
	switch c.Status {
	case "passed":
		return Passed
	case "skipped", "pending":
		return Skipped
	case "failed", "panicked", "interrupted", "aborted", "timedout":
		return Failed
	}
	switch {
	case c.Failure != nil || c.Error != nil:
		return Failed
	case c.Skipped != nil:
		return Skipped
	}
	return Passed
}

// Count returns how many specs had outcome o.
func (r *Run) Count(o Outcome) int {
	n := 0
	for _, v := range r.Specs {
		if v == o {
			n++
		}
	}
	return n
}
