// Package torture is Veil's fault-injection and load suite: it breaks a
// running sandbox the ways a busy node does (helpers killed, containerd
// restarted, the agent dead or frozen, a full state_dir, a client that
// gives up mid-boot) and loads it (create/delete cycles, parallel starts,
// exec storms, a slow reader of a large stdout), through containerd's CRI
// plugin and through ctr. Every case ends with the harness's leak census.
//
// `make test` runs every case once with small counts; `make torture`
// (VEIL_TORTURE=full) runs the full counts. Each case adds a row to
// <output>/torture/results.md: outcome, time to recover, census figures.
package torture
