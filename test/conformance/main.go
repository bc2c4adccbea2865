package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/veil-runtime/veil/test/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
}

// errShortfalls is returned when veil falls short of runc on specs not
// listed as known.
var errShortfalls = errors.New("specs pass on runc but not on veil and are not listed as known shortfalls (see the report; -report-only to only report)")

// readKnown reads the known-shortfalls file: spec names, one a line;
// blank lines and # comments are ignored. A missing file lists nothing.
func readKnown(path string) (map[string]bool, error) {
	known := map[string]bool{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return known, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read known shortfalls: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			known[l] = true
		}
	}
	return known, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func run() error {
	handlers := flag.String("handlers", envOr("HANDLERS", harness.HandlerRunc+","+harness.HandlerVeil), "runtime handlers to run critest against, in order; the first is the reference")
	focus := flag.String("focus", os.Getenv("FOCUS"), "only run specs matching this regexp (ginkgo focus)")
	skip := flag.String("skip", os.Getenv("SKIP"), "skip specs matching this regexp (ginkgo skip)")
	reportOnly := flag.Bool("report-only", os.Getenv("REPORT_ONLY") == "1", "exit 0 even when veil falls short of runc")
	out := flag.String("out", filepath.Join(harness.OutputDir(), "conformance"), "directory for the JUnit reports, critest logs and report.md")
	critest := flag.String("critest", filepath.Join(harness.CacheDir(), "bin", "critest"), "critest binary (make conformance builds it)")
	known := flag.String("known", envOr("KNOWN", filepath.Join(harness.RepoRoot(), "test", "conformance", "known-shortfalls.txt")),
		"file listing specs (one name a line, # comments) known to pass on runc but not on veil: only others fail the run")
	timeout := flag.Duration("timeout", 2*time.Hour, "time limit of each handler's critest run")
	flag.Parse()

	if os.Geteuid() != 0 {
		return errors.New("needs root (containerd, network namespaces)")
	}
	if _, err := os.Stat(*critest); err != nil {
		return fmt.Errorf("critest: %w (run 'make conformance', or 'bash test/setup/setup.sh critest')", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", *out, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	veilConfig, err := writeVeilConfig(*out)
	if err != nil {
		return err
	}
	start := time.Now()
	c, err := harness.Start(ctx, harness.Options{CRI: &harness.CRIOptions{VeilConfig: veilConfig}})
	if err != nil {
		return err
	}
	fmt.Printf("containerd (CRI) up in %s: %s, netns %s, registry %s\n", time.Since(start).Round(time.Millisecond), c.Address, c.NetNS, c.Registry.Addr)
	// Keep containerd's log with the reports.
	defer func() {
		if b, err := os.ReadFile(c.LogPath); err == nil {
			_ = os.WriteFile(filepath.Join(*out, "containerd.log"), b, 0o644)
		}
		if err := c.Stop(context.WithoutCancel(ctx)); err != nil {
			fmt.Fprintln(os.Stderr, "conformance: stop containerd:", err)
		}
	}()

	var runs []*Run
	wall := map[string]time.Duration{}
	names := strings.Split(*handlers, ",")
	for _, h := range names {
		r, d, err := runCritest(ctx, c, *critest, h, *out, *focus, *skip, *timeout)
		wall[h] = d
		if err != nil {
			fmt.Fprintf(os.Stderr, "conformance: %s: %v\n", h, err)
			r = &Run{Handler: h, Specs: map[string]Outcome{}}
		}
		runs = append(runs, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	var filter []string
	if *focus != "" {
		filter = append(filter, "focus `"+*focus+"`")
	}
	if *skip != "" {
		filter = append(filter, "skip `"+*skip+"`")
	}
	text, short := report(runs, names[0], wall, strings.Join(filter, ", "))
	path := filepath.Join(*out, "report.md")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	fmt.Print("\n" + text)
	fmt.Printf("\nreport: %s\n", path)
	knownSpecs, err := readKnown(*known)
	if err != nil {
		return err
	}
	newOnes, fixed := splitKnown(short, knownSpecs)
	if len(fixed) > 0 && len(runs) > 1 && *focus == "" && *skip == "" {
		fmt.Printf("\n%d specs in %s no longer fall short (remove them):\n", len(fixed), *known)
		for _, f := range fixed {
			fmt.Printf("  %s\n", f)
		}
	}
	if len(newOnes) > 0 {
		fmt.Printf("\n%d shortfalls not listed in %s:\n", len(newOnes), *known)
		for _, s := range newOnes {
			fmt.Printf("  %s\n", s)
		}
		if !*reportOnly {
			return errShortfalls
		}
	}
	return nil
}

// runCritest runs critest against one runtime handler inside containerd's
// network namespace (it dials pod IPs, hostPorts on 127.0.0.1 and the
// streaming server) and parses its JUnit report.
func runCritest(ctx context.Context, c *harness.Containerd, critest, handler, out, focus, skip string, timeout time.Duration) (*Run, time.Duration, error) {
	junit := filepath.Join(out, "junit-"+handler+".xml")
	logPath := filepath.Join(out, "critest-"+handler+".log")
	_ = os.Remove(junit)
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, 0, fmt.Errorf("create %s: %w", logPath, err)
	}
	defer func() { _ = logFile.Close() }()
	args := []string{
		"-runtime-endpoint", c.CRIEndpoint(),
		"-image-endpoint", c.CRIEndpoint(),
		"-runtime-handler", handler,
		"-nri-socket", c.NRISocket(),
		"-ginkgo.junit-report=" + junit,
		"-ginkgo.no-color",
		"-ginkgo.timeout=" + timeout.String(),
	}
	if focus != "" {
		args = append(args, "-ginkgo.focus="+focus)
	}
	if skip != "" {
		args = append(args, "-ginkgo.skip="+skip)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+5*time.Minute)
	defer cancel()
	cmd := c.Command(ctx, critest, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	fmt.Printf("critest (handler %s) running, log %s\n", handler, logPath)
	start := time.Now()
	runErr := cmd.Run()
	d := time.Since(start)
	r, err := parseJUnit(junit, handler)
	if err != nil {
		if runErr != nil {
			return nil, d, fmt.Errorf("critest (%w) left no usable report: %w; see %s", runErr, err, logPath)
		}
		return nil, d, fmt.Errorf("critest left no usable report: %w; see %s", err, logPath)
	}
	fmt.Printf("critest (handler %s) done in %s: passed %d, failed %d, skipped %d\n", handler, d.Round(time.Second), r.Count(Passed), r.Count(Failed), r.Count(Skipped))
	return r, d, nil
}
