package inspect

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-runtime/veil/agent/api"
)

// fakeAgent answers DebugExec and Stats from fixed values.
type fakeAgent struct {
	mu     sync.Mutex
	got    *api.DebugExecRequest
	closed bool
}

func (a *fakeAgent) DebugExec(_ context.Context, r *api.DebugExecRequest) (*api.DebugExecResponse, error) {
	a.mu.Lock()
	a.got = r
	a.mu.Unlock()
	return &api.DebugExecResponse{ExitStatus: 0, Stdout: []byte("6.1.0\n")}, nil
}

func (a *fakeAgent) Stats(context.Context, *api.StatsRequest) (*api.StatsResponse, error) {
	return &api.StatsResponse{MemoryTotalBytes: 256 << 20, MemoryAvailableBytes: 200 << 20,
		Containers: []*api.ContainerStats{{ContainerId: "c1", PidsCurrent: 2}}}, nil
}

func (a *fakeAgent) Close() error { a.closed = true; return nil }

func dialTo(a *fakeAgent) DialFunc {
	return func(context.Context, string) (Agent, error) { return a, nil }
}

func failDial(context.Context, string) (Agent, error) { return nil, errors.New("no agent") }

// TestDialAgentNotRunning: a sandbox whose hybrid vsock socket is gone
// says what the operator should check.
func TestDialAgentNotRunning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := DialAgent(ctx, t.TempDir())
	if err == nil {
		_ = a.Close()
		t.Fatal("dialled an agent in an empty directory")
	}
	if !strings.Contains(err.Error(), "connect to the agent") || !strings.Contains(err.Error(), "(is the sandbox running?)") {
		t.Fatalf("error %q does not say the sandbox may not be running", err)
	}
}

func TestExec(t *testing.T) {
	f := newFixture(t)
	f.sandbox(t, "sb", []fakeHelper{{"qemu", 5, true}}, nil, true)
	cases := []struct {
		name    string
		id      string
		dial    DialFunc
		wantErr string
	}{
		{name: "runs", id: "sb"},
		{name: "agent unreachable", id: "sb", dial: failDial, wantErr: "no agent"},
		{name: "unknown sandbox", id: "x", wantErr: "not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := &fakeAgent{}
			dial := tc.dial
			if dial == nil {
				dial = dialTo(a)
			}
			resp, err := f.reader().Exec(context.Background(), tc.id, dial, ExecOptions{Argv: []string{"uname", "-r"}, Timeout: 3 * time.Second})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(resp.Stdout) != "6.1.0\n" {
				t.Fatalf("%v, %v", resp, err)
			}
			if a.got.TimeoutMs != 3000 || strings.Join(a.got.Argv, " ") != "uname -r" || !a.closed {
				t.Fatalf("request %+v closed %v", a.got, a.closed)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	dir := f.sandbox(t, "q", []fakeHelper{{"qemu", 21, true}, {"virtiofsd", 22, true}, {"vhost-vsock", 23, false}}, nil, true)
	serveQMP(t, dir)
	cdir := f.sandbox(t, "c", []fakeHelper{{"cloud-hypervisor", 31, true}}, nil, true)
	serveCH(t, cdir)
	f.sandbox(t, "dead", []fakeHelper{{"qemu", 41, false}}, nil, false)
	cases := []struct {
		name         string
		id           string
		dial         DialFunc
		guest        bool
		guestErr     string
		counters     bool
		countersErr  string
		aliveWithRSS int
	}{
		{name: "qemu", id: "q", dial: dialTo(&fakeAgent{}), guest: true, countersErr: "not available: qemu", aliveWithRSS: 2},
		{name: "cloud-hypervisor counters", id: "c", dial: dialTo(&fakeAgent{}), guest: true, counters: true, aliveWithRSS: 1},
		{name: "agent unreachable", id: "q", dial: failDial, guestErr: "no agent", countersErr: "not available", aliveWithRSS: 2},
		{name: "dead sandbox", id: "dead", dial: failDial, guestErr: "VMM is dead", countersErr: "VMM is dead"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			m, err := f.reader().Metrics(ctx, tc.id, tc.dial)
			if err != nil {
				t.Fatal(err)
			}
			rss := 0
			for _, h := range m.Host {
				if h.Usage != nil && h.Usage.RSSBytes > 0 {
					rss++
				} else if h.Error == "" {
					t.Errorf("%s: no usage and no error", h.Name)
				}
			}
			if rss != tc.aliveWithRSS {
				t.Errorf("%d helpers with RSS, want %d: %+v", rss, tc.aliveWithRSS, m.Host)
			}
			if (m.Guest != nil) != tc.guest || !strings.Contains(m.GuestError, tc.guestErr) {
				t.Errorf("guest %v error %q", m.Guest, m.GuestError)
			}
			if (m.Counters != nil) != tc.counters || !strings.Contains(m.CountersError, tc.countersErr) {
				t.Errorf("counters %v error %q", m.Counters, m.CountersError)
			}
			if tc.counters && m.Counters["_net0"]["tx_bytes"] != 20 {
				t.Errorf("counters %v", m.Counters)
			}
		})
	}
}

// notifyWriter signals on ch whenever what was written so far contains
// want.
type notifyWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	ch   chan struct{}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.want != "" && strings.Contains(w.buf.String(), w.want) {
		w.want = ""
		close(w.ch)
	}
	return len(p), nil
}

func (w *notifyWriter) expect(s string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.want, w.ch = s, make(chan struct{})
	if strings.Contains(w.buf.String(), s) {
		w.want = ""
		close(w.ch)
	}
	return w.ch
}
