package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/veil-runtime/veil/test/integration"
)

// Monitor is a running `veil monitor` for a test.
type Monitor struct {
	// URL is its metrics endpoint.
	URL     string
	LogPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// StartMonitor runs `veil monitor` on the Veil config at cfgPath, on a
// free loopback port, logging to logPath, and returns once it answers.
func StartMonitor(ctx context.Context, cfgPath, logPath string) (*Monitor, error) {
	veil, err := integration.LookPath("veil", integration.BinDirs())
	if err != nil {
		return nil, err
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(veil, "--config", cfgPath, "monitor", "--listen", addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = environ(integration.BinDirs(), nil)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start monitor: %w", err)
	}
	m := &Monitor{URL: "http://" + addr + "/metrics", LogPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		m.waitErr = cmd.Wait()
		close(m.exited)
	}()
	for {
		if _, err := m.get(ctx); err == nil {
			return m, nil
		}
		select {
		case <-m.exited:
			return nil, fmt.Errorf("monitor exited at start (%w): %s", m.waitErr, m.logTail())
		case <-ctx.Done():
			m.kill()
			return nil, fmt.Errorf("monitor not answering at %s: %w: %s", m.URL, ctx.Err(), m.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePort picks a loopback port no one listens on now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

func (m *Monitor) get(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", m.URL, resp.Status, body)
	}
	return body, nil
}

// Scrape fetches the metrics as Prometheus would and parses them; it
// returns the raw text too.
func (m *Monitor) Scrape(ctx context.Context) (map[string]*dto.MetricFamily, string, error) {
	body, err := m.get(ctx)
	if err != nil {
		return nil, "", err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return nil, string(body), fmt.Errorf("parse scrape: %w", err)
	}
	return fams, string(body), nil
}

// Stop ends the monitor with SIGTERM and waits within ctx; one that does
// not exit cleanly is an error.
func (m *Monitor) Stop(ctx context.Context) error {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-ctx.Done():
		m.kill()
		return fmt.Errorf("monitor did not stop: %w: %s", ctx.Err(), m.logTail())
	}
	var ee *exec.ExitError
	if m.waitErr != nil && !errors.As(m.waitErr, &ee) {
		return m.waitErr
	}
	if m.waitErr != nil {
		return fmt.Errorf("monitor: %w: %s", m.waitErr, m.logTail())
	}
	return nil
}

func (m *Monitor) kill() {
	_ = m.cmd.Process.Kill()
	<-m.exited
}

func (m *Monitor) logTail() string {
	b, err := os.ReadFile(m.LogPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// Series finds the value of the series of family name whose labels
// include want (a gauge's or counter's value, a histogram's sample
// count); ok is false when there is none.
func Series(fams map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// Pid is the monitor's process id.
func (m *Monitor) Pid() int { return m.cmd.Process.Pid }
