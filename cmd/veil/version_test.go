package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		check func(t *testing.T, out string)
	}{
		{"table", []string{"version"}, func(t *testing.T, out string) {
			if !strings.Contains(out, "agent protocol: 1") {
				t.Errorf("output %q lacks the agent protocol", out)
			}
		}},
		{"json", []string{"version", "--json"}, func(t *testing.T, out string) {
			var v versionInfo
			if err := json.Unmarshal([]byte(out), &v); err != nil || v.Veil == "" {
				t.Errorf("json %q: %v", out, err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			cmd := newRootCommand()
			cmd.SetOut(&buf)
			cmd.SetArgs(tc.args)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			tc.check(t, buf.String())
		})
	}
}
