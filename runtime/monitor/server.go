package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/containerd/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/veil-runtime/veil/runtime/version"
)

// MetricsPath is where the metrics are served.
const MetricsPath = "/metrics"

// NewRegistry registers c, the monitor's own build, Go runtime and
// process figures (all under veil_monitor_ / veil_).
func NewRegistry(c *Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	own := prometheus.WrapRegistererWithPrefix("veil_monitor_", reg)
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "veil_build_info",
		Help:        "The Veil build serving these metrics, always 1; version as a label.",
		ConstLabels: prometheus.Labels{"version": version.Version},
	})
	build.Set(1)
	for _, err := range []error{
		reg.Register(c),
		reg.Register(build),
		own.Register(collectors.NewGoCollector()),
		own.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
	} {
		if err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return reg, nil
}

// Serve serves reg at MetricsPath on l until ctx ends, then shuts the
// server down; it closes l.
func Serve(ctx context.Context, l net.Listener, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, queue(maxScrapes, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// A sandbox that failed is reported in its own series; the
		// others are still served.
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      errorLog{ctx},
	})))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		_, _ = fmt.Fprintf(w, "Veil monitor: metrics at %s\n", MetricsPath)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	log.G(ctx).WithField("address", l.Addr().String()).Info("monitor: serving " + MetricsPath)
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("monitor: serve: %w", err)
	}
	return nil
}

// maxScrapes bounds the scrapes served at once: each one dials every
// sandbox's agent and shim.
const maxScrapes = 2

// queue serves at most n requests at once; the others wait for a turn
// while their client does.
func queue(n int, h http.Handler) http.Handler {
	turns := make(chan struct{}, n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case turns <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		defer func() { <-turns }()
		h.ServeHTTP(w, r)
	})
}

// errorLog sends promhttp's errors to the context's logger.
type errorLog struct{ ctx context.Context }

func (e errorLog) Println(v ...any) {
	log.G(e.ctx).Warn(fmt.Sprint(v...))
}

// Run listens on listen and serves src's sandboxes until ctx ends.
func Run(ctx context.Context, listen string, src Source, opts Options) error {
	reg, err := NewRegistry(NewCollector(ctx, src, opts))
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return fmt.Errorf("monitor: listen on %s: %w", listen, err)
	}
	return Serve(ctx, l, reg)
}
