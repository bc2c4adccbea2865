package inspect

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/statedir"
)

// serveQMP answers QMP on dir/qmp.sock like QEMU: greeting, then one
// answer per command, with an event before query-status's answer.
func serveQMP(t *testing.T, dir string) {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(dir, "qmp.sock"))
	must(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_, _ = c.Write([]byte(`{"QMP": {"version": {}, "capabilities": []}}` + "\n"))
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					var req struct{ Execute string }
					if json.Unmarshal(sc.Bytes(), &req) != nil {
						return
					}
					switch req.Execute {
					case "qmp_capabilities":
						_, _ = c.Write([]byte(`{"return": {}}` + "\n"))
					case "query-status":
						_, _ = c.Write([]byte(`{"event": "RESUME", "data": {}}` + "\n" + `{"return": {"status": "running", "singlestep": false, "running": true}}` + "\n"))
					default:
						_, _ = c.Write([]byte(`{"error": {"class": "CommandNotFound", "desc": "no"}}` + "\n"))
					}
				}
			}()
		}
	}()
}

// serveCH answers vm.info and vm.counters on dir/helper/ch-api like Cloud
// Hypervisor.
func serveCH(t *testing.T, dir string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, statedir.HelperDir), 0o700))
	l, err := net.Listen("unix", filepath.Join(dir, statedir.CHAPISocket))
	must(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/vm.info", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"config":{"payload":{}},"state":"Running","memory_actual_size":268435456}`))
	})
	mux.HandleFunc("/api/v1/vm.counters", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"_net0":{"rx_bytes":10,"tx_bytes":20}}`))
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

func TestVMInfo(t *testing.T) {
	f := newFixture(t)
	qdir := f.sandbox(t, "q", []fakeHelper{{"qemu", 11, true}}, nil, false)
	serveQMP(t, qdir)
	cdir := f.sandbox(t, "c", []fakeHelper{{"cloud-hypervisor", 12, true}}, nil, false)
	serveCH(t, cdir)
	f.sandbox(t, "dead", []fakeHelper{{"qemu", 13, false}}, nil, false)
	f.sandbox(t, "nosock", []fakeHelper{{"qemu", 14, true}}, nil, false)

	cases := []struct {
		name, id, state, wantErr string
		mem                      int64
	}{
		{name: "qemu query-status", id: "q", state: "running"},
		{name: "cloud-hypervisor vm.info", id: "c", state: "Running", mem: 256 << 20},
		{name: "dead VMM", id: "dead", wantErr: "VMM is dead"},
		{name: "no QMP socket", id: "nosock", wantErr: "qmp.sock"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			info, err := f.reader().VMInfo(ctx, tc.id)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.State != tc.state || info.MemoryActualBytes != tc.mem || len(info.Raw) == 0 {
				t.Fatalf("%+v", info)
			}
		})
	}
}
