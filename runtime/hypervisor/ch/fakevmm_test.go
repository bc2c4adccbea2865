package ch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/moby/sys/reexec"
)

// The fake VMM: this test binary, re-executed (through a wrapper script
// that sets fakePlanEnv) in place of cloud-hypervisor, so that the
// driver's real launch path runs. It serves a stateful imitation of the CH
// API on the --api-socket path, validates every request against
// openapi/cloud-hypervisor.yaml (answering 400 to an invalid one, as CH
// does), checks its own answers against the spec, injects the faults its
// plan names, and appends one JSON line per event to the plan's record
// file for the test to assert on.

// fakePlanEnv names the plan file; when set, TestMain runs the fake VMM
// instead of the tests.
const fakePlanEnv = "VEIL_CH_FAKE_PLAN"

// fault is an injected misbehaviour of one endpoint.
type fault struct {
	// Status and Body are the answer (text/plain) instead of the normal one.
	Status int    `json:"status,omitempty"`
	Body   string `json:"body,omitempty"`
	// Hang never answers: the handler blocks until the client gives up.
	Hang bool `json:"hang,omitempty"`
	// Drop closes the connection without answering.
	Drop bool `json:"drop,omitempty"`
	// Times limits the fault to the first Times calls (0: every call).
	Times int `json:"times,omitempty"`
}

// fakePlan configures one fake VMM run.
type fakePlan struct {
	// Spec is the absolute path of openapi/cloud-hypervisor.yaml.
	Spec string `json:"spec"`
	// Record is the file receiving the JSON lines.
	Record string `json:"record"`
	// Faults maps an endpoint ("vm.create") to its fault. The fake
	// re-reads them from the plan file on every request, so a test can
	// change them while the VMM runs (harness.setFaults); call counts for
	// Times restart when they change.
	Faults map[string]fault `json:"faults,omitempty"`
	// ExitOnPing makes the VMM print an error and exit(1) on the first
	// vmm.ping, without answering.
	ExitOnPing bool `json:"exit_on_ping,omitempty"`
	// StateAfterCreate and StateAfterBoot override what vm.info reports
	// (defaults Created and Running).
	StateAfterCreate string `json:"state_after_create,omitempty"`
	StateAfterBoot   string `json:"state_after_boot,omitempty"`
	// IgnoreShutdown answers vmm.shutdown but keeps running.
	IgnoreShutdown bool `json:"ignore_shutdown,omitempty"`
	// CheckPaths makes the fake check, in its own root, every path a
	// request hands it, as CH would use it (checkPaths); a failure is
	// recorded as Invalid and answered 500.
	CheckPaths bool `json:"check_paths,omitempty"`
	// Hidden are paths that must not exist in the fake's root (the
	// host's, for a jailed fake); one that does is recorded as Invalid
	// on the start record.
	Hidden []string `json:"hidden,omitempty"`
}

// fakeRecord is one line of the record file.
type fakeRecord struct {
	// Event is "start" (the process started) or "call" (a request).
	Event string `json:"event"`
	// For "start": the arguments, pid and network namespace.
	Args  []string `json:"args,omitempty"`
	Pid   int      `json:"pid,omitempty"`
	NetNS string   `json:"netns,omitempty"`
	// For "call": the request and the answer's status (0: none).
	Endpoint string `json:"endpoint,omitempty"`
	Method   string `json:"method,omitempty"`
	Body     string `json:"body,omitempty"`
	Status   int    `json:"status,omitempty"`
	// Invalid says what in the request (or in the fake's own answer)
	// broke the spec.
	Invalid string `json:"invalid,omitempty"`
}

// fakeKVMError is what the fake prints before dying on ExitOnPing.
const fakeKVMError = "Error creating hypervisor: KVM: /dev/kvm: No such file or directory (os error 2)"

// fakeConsole is what the fake writes on a serial console in Socket
// mode, once a client connects.
const fakeConsole = "fake guest console: \x1b[31mbooted\n"

// serveSerial serves the serial console like CH in Socket mode: it
// listens on the configured socket during vm.create (CH binds it there,
// without removing a stale one) and writes fakeConsole to the first
// client.
func (f *fakeVMM) serveSerial() {
	var cfg struct {
		Serial struct {
			Mode   string `json:"mode"`
			Socket string `json:"socket"`
		} `json:"serial"`
	}
	if json.Unmarshal(f.config, &cfg) != nil || cfg.Serial.Mode != "Socket" {
		return
	}
	l, err := net.Listen("unix", cfg.Serial.Socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake cloud-hypervisor: serial socket:", err)
		return
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		_, _ = io.WriteString(c, fakeConsole)
	}()
}

func TestMain(m *testing.M) {
	if reexec.Init() { // the jail stage
		return
	}
	if p := os.Getenv(fakePlanEnv); p != "" {
		os.Exit(runFakeVMM(p, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// runFakeVMM is the fake VMM's main; it returns the exit code.
func runFakeVMM(planPath string, args []string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "fake cloud-hypervisor:", err)
		return 2
	}
	b, err := os.ReadFile(planPath)
	if err != nil {
		return fail(err)
	}
	var plan fakePlan
	if err := json.Unmarshal(b, &plan); err != nil {
		return fail(err)
	}
	// Veil always turns Cloud Hypervisor's seccomp filters on.
	if len(args) != 4 || args[0] != "--api-socket" || args[2] != "--seccomp" || args[3] != "true" {
		return fail(fmt.Errorf("want --api-socket <path> --seccomp true, got %q", args))
	}
	s, err := loadAPISpec(plan.Spec)
	if err != nil {
		return fail(err)
	}
	rec, err := os.OpenFile(plan.Record, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = rec.Close() }()
	f := &fakeVMM{plan: plan, planPath: planPath, spec: s, rec: rec, calls: map[string]int{}, exit: make(chan int, 1)}
	netns, _ := os.Readlink("/proc/self/ns/net")
	start := fakeRecord{Event: "start", Args: args, Pid: os.Getpid(), NetNS: netns}
	for _, p := range plan.Hidden {
		if _, err := os.Lstat(p); err == nil {
			start.Invalid += fmt.Sprintf("%s is visible to the VMM; ", p)
		}
	}
	f.record(start)

	// Schema validation initialises lazily and slowly (much more so under
	// -race); pay for it before the API answers, so that answer times stay
	// well below the tests' API timeouts.
	_ = s.checkRequest(http.MethodPut, "/vm.create", []byte(`{"payload":{"kernel":"/k"},"fs":[{"tag":"t","socket":"/s","num_queues":1,"queue_size":1}]}`))
	_ = s.checkResponse(http.MethodGet, "/vm.info", http.StatusOK, []byte(`{"config":{"payload":{}},"state":"Running"}`))

	ln, err := net.Listen("unix", args[1])
	if err != nil {
		return fail(err)
	}
	fmt.Println("fake cloud-hypervisor: API server:", args[1])
	srv := &http.Server{Handler: f}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "fake cloud-hypervisor: serve:", err)
			f.exit <- 3
		}
	}()
	code := <-f.exit
	_ = srv.Close()
	return code
}

// fakeVMM is the fake's HTTP handler and VM state.
type fakeVMM struct {
	plan     fakePlan
	planPath string
	spec     *apiSpec

	mu     sync.Mutex
	rec    *os.File
	calls  map[string]int // per endpoint, since the faults last changed
	faults string         // the faults' JSON, to notice changes
	state  string         // "" (no VM), Created, Running, Paused, Shutdown
	config json.RawMessage
	exit   chan int
}

func (f *fakeVMM) record(r fakeRecord) {
	b, _ := json.Marshal(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	_, _ = f.rec.Write(append(b, '\n'))
}

func (f *fakeVMM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	path := f.spec.endpoint(r.URL.Path)
	rec := fakeRecord{Event: "call", Endpoint: strings.TrimPrefix(path, "/"), Method: r.Method, Body: string(body)}
	invalid := f.spec.checkRequest(r.Method, path, body)
	if invalid == nil && len(body) > 0 && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		invalid = fmt.Errorf("body sent as %q, want application/json", r.Header.Get("Content-Type"))
	}
	if invalid != nil {
		rec.Invalid = invalid.Error()
		f.send(w, rec, http.StatusBadRequest, "text/plain", []byte(invalid.Error()))
		return
	}

	if f.plan.CheckPaths {
		if err := checkPaths(rec.Endpoint, body); err != nil {
			rec.Invalid = "paths: " + err.Error()
			f.send(w, rec, http.StatusInternalServerError, "text/plain", []byte(err.Error()))
			return
		}
	}

	flt, ok, n := f.fault(rec.Endpoint)
	if rec.Endpoint == "vmm.ping" && f.plan.ExitOnPing {
		f.record(rec)
		fmt.Fprintln(os.Stderr, fakeKVMError)
		os.Exit(1)
	}
	if ok && (flt.Times == 0 || n <= flt.Times) {
		switch {
		case flt.Hang:
			f.record(rec)
			<-r.Context().Done()
		case flt.Drop:
			f.record(rec)
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
			}
		default:
			f.check(&rec, path, flt.Status, []byte(flt.Body))
			f.send(w, rec, flt.Status, "text/plain", []byte(flt.Body))
		}
		return
	}

	code, answer := f.handle(rec.Endpoint, body)
	f.check(&rec, path, code, answer)
	f.send(w, rec, code, "application/json", answer)
	if rec.Endpoint == "vmm.shutdown" && !f.plan.IgnoreShutdown {
		f.exit <- 0
	}
}

// fault counts a call to endpoint and returns the fault currently planned
// for it, if any, and the call's number.
func (f *fakeVMM) fault(endpoint string) (fault, bool, int) {
	var cur fakePlan
	if b, err := os.ReadFile(f.planPath); err == nil && json.Unmarshal(b, &cur) == nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		if raw := string(mustMarshal(cur.Faults)); raw != f.faults {
			f.faults, f.calls = raw, map[string]int{}
		}
	} else {
		cur = f.plan
		f.mu.Lock()
		defer f.mu.Unlock()
	}
	f.calls[endpoint]++
	flt, ok := cur.Faults[endpoint]
	return flt, ok, f.calls[endpoint]
}

// check validates the fake's own answer against the spec.
func (f *fakeVMM) check(rec *fakeRecord, path string, code int, body []byte) {
	if err := f.spec.checkResponse(rec.Method, path, code, body); err != nil {
		rec.Invalid = "fake answer: " + err.Error()
	}
}

// send records the call, then answers it.
func (f *fakeVMM) send(w http.ResponseWriter, rec fakeRecord, code int, contentType string, body []byte) {
	rec.Status = code
	f.record(rec)
	if len(body) > 0 {
		w.Header().Set("Content-Type", contentType)
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
	_ = http.NewResponseController(w).Flush()
}

// handle is the fake's CH state machine: the status and JSON body of a
// normal answer.
func (f *fakeVMM) handle(endpoint string, body []byte) (int, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	text := func(code int, msg string) (int, []byte) { return code, []byte(msg) }
	created := f.state != ""
	switch endpoint {
	case "vmm.ping":
		return http.StatusOK, mustMarshal(map[string]any{"build_version": "v53.0", "version": "53.0.0", "pid": os.Getpid(), "features": []string{"kvm"}})
	case "vmm.shutdown":
		f.state = ""
		return http.StatusNoContent, nil
	case "vm.create":
		if created {
			return text(http.StatusInternalServerError, "Error creating VM: VmAlreadyCreated")
		}
		f.state, f.config = or(f.plan.StateAfterCreate, "Created"), json.RawMessage(body)
		f.serveSerial()
		return http.StatusNoContent, nil
	case "vm.info":
		if !created {
			return text(http.StatusInternalServerError, "Error getting VM info: VmNotCreated")
		}
		return http.StatusOK, mustMarshal(map[string]any{"config": f.config, "state": f.state, "memory_actual_size": 256 << 20})
	case "vm.boot":
		if !created {
			return http.StatusNotFound, nil
		}
		if f.state != "Created" {
			return text(http.StatusInternalServerError, "Error booting VM: VmAlreadyBooted")
		}
		f.state = or(f.plan.StateAfterBoot, "Running")
		return http.StatusNoContent, nil
	case "vm.pause", "vm.resume":
		from, to := "Running", "Paused"
		if endpoint == "vm.resume" {
			from, to = to, from
		}
		if !created {
			return http.StatusNotFound, nil
		}
		if f.state != from {
			return http.StatusMethodNotAllowed, nil
		}
		f.state = to
		return http.StatusNoContent, nil
	case "vm.add-disk", "vm.add-net", "vm.add-fs":
		if !created {
			return text(http.StatusInternalServerError, "Error adding device: VmNotCreated")
		}
		if f.state == "Created" {
			return http.StatusNoContent, nil // cold add
		}
		var dev struct{ ID string }
		_ = json.Unmarshal(body, &dev)
		return http.StatusOK, mustMarshal(map[string]string{"id": or(dev.ID, "_dev1"), "bdf": "0000:00:06.0"})
	case "vm.remove-device", "vm.resize":
		if !created {
			return http.StatusNotFound, nil
		}
		return http.StatusNoContent, nil
	case "vm.snapshot":
		if !created {
			return http.StatusNotFound, nil
		}
		if f.state != "Paused" {
			return text(http.StatusInternalServerError, "Error snapshotting VM: VM is not paused")
		}
		return http.StatusNoContent, nil
	case "vm.restore":
		if created {
			return http.StatusNotFound, nil
		}
		var rc struct{ Resume bool }
		_ = json.Unmarshal(body, &rc)
		f.state, f.config = "Paused", json.RawMessage(`{"payload":{"kernel":"/restored/vmlinux"}}`)
		if rc.Resume {
			f.state = "Running"
		}
		return http.StatusNoContent, nil
	case "vm.counters":
		if !created {
			return text(http.StatusInternalServerError, "Error getting counters: VmNotCreated")
		}
		return http.StatusOK, mustMarshal(map[string]map[string]int64{"_fs0": {"read_bytes": 4096, "write_bytes": 512}})
	}
	return text(http.StatusInternalServerError, "fake cloud-hypervisor: "+endpoint+" not imitated")
}

// checkPaths checks, in the fake's root, the paths of a request as CH
// uses them: it reads the payload, connects to virtio-fs sockets, makes
// its vsock and serial sockets beside the paths named (so their
// directories must be writable), reads a restore source and a hot-added
// disk.
func checkPaths(endpoint string, body []byte) error {
	var req struct {
		Payload struct {
			Kernel    string `json:"kernel"`
			Initramfs string `json:"initramfs"`
		} `json:"payload"`
		Fs     []struct{ Socket string } `json:"fs"`
		Vsock  struct{ Socket string }   `json:"vsock"`
		Serial struct{ Socket string }   `json:"serial"`
		// vm.restore, vm.add-disk, vm.add-fs
		SourceURL string `json:"source_url"`
		Path      string `json:"path"`
		Socket    string `json:"socket"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil //nolint:nilerr // not a body for these checks: the spec check reports it
	}
	var errs []error
	readable := func(p string) {
		if p == "" {
			return
		}
		f, err := os.Open(p)
		if err != nil {
			errs = append(errs, err)
			return
		}
		_ = f.Close()
	}
	connectable := func(p string) {
		c, err := net.Dial("unix", p)
		if err != nil {
			errs = append(errs, err)
			return
		}
		_ = c.Close()
	}
	writableDir := func(p string) {
		if p == "" {
			return
		}
		f, err := os.CreateTemp(filepath.Dir(p), ".fake-*")
		if err != nil {
			errs = append(errs, err)
			return
		}
		_ = f.Close()
		_ = os.Remove(f.Name())
	}
	switch endpoint {
	case "vm.create":
		readable(req.Payload.Kernel)
		readable(req.Payload.Initramfs)
		for _, fs := range req.Fs {
			connectable(fs.Socket)
		}
		writableDir(req.Vsock.Socket)
		writableDir(req.Serial.Socket)
	case "vm.restore":
		readable(filepath.Join(strings.TrimPrefix(req.SourceURL, "file://"), "config.json"))
	case "vm.add-disk":
		readable(req.Path)
	case "vm.add-fs":
		connectable(req.Socket)
	}
	return errors.Join(errs...)
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
