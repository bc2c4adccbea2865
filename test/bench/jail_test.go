package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/veil-runtime/veil/test/integration"
)

// jailSamples is how many sandbox starts each side gets.
const jailSamples = 3

// BenchmarkJailCost measures what the jail and the sandbox cgroup add to a
// sandbox start: full starts (to the agent answering) with jail.enabled
// and cgroups.enabled on (the default) and off, one VM at a time,
// interleaved so both sides see the same machine.
func BenchmarkJailCost(b *testing.B) {
	integration.Require(b, integration.Root)
	cfg, _ := veilConfig(b)
	on, off := *cfg, *cfg
	on.Jail.Enabled, on.Cgroups.Enabled = true, true
	off.Jail.Enabled, off.Cgroups.Enabled = false, false
	var withJail, without []time.Duration
	for i := range jailSamples {
		withJail = append(withJail, sandboxStart(b, &on, fmt.Sprintf("bench-jail-on-%d", i)))
		without = append(without, sandboxStart(b, &off, fmt.Sprintf("bench-jail-off-%d", i)))
	}
	mOn, mOff := median(withJail), median(without)
	b.ReportMetric(mOn.Seconds(), "jailed_start_s")
	b.ReportMetric(mOff.Seconds(), "unjailed_start_s")
	b.ReportMetric((mOn-mOff).Seconds()*1000, "jail_cost_ms")
	b.Logf("sandbox start with the jail and cgroup: median %v of %v; without: median %v of %v; cost %v",
		mOn, withJail, mOff, without, mOn-mOff)
}
