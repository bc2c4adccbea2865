package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDescribe(t *testing.T) {
	cases := []struct {
		name    string
		file    string
		want    map[string]any // key → value; source is the file when in set
		set     []string
		wantErr string
	}{
		{name: "empty file: all defaults", file: "", want: map[string]any{"state_dir": "/run/veil/sandboxes", "guest.vcpus": int64(1)}},
		{name: "file sets some keys", file: "state_dir = \"/tmp/s\"\n[guest]\nvcpus = 2\n",
			want: map[string]any{"state_dir": "/tmp/s", "guest.vcpus": int64(2), "guest.memory_mib": int64(256), "timeouts.stop": "3s"},
			set:  []string{"state_dir", "guest.vcpus"}},
		{name: "unknown key", file: "[guest]\nvcpu = 2\n", wantErr: `line 2: unknown key "guest.vcpu"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			_, keys, err := Describe(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]KeySource{}
			for _, k := range keys {
				got[k.Key] = k
			}
			for k, v := range tc.want {
				if got[k].Value != v {
					t.Errorf("%s = %#v, want %#v", k, got[k].Value, v)
				}
			}
			set := map[string]bool{}
			for _, k := range tc.set {
				set[k] = true
			}
			for k, ks := range got {
				want := SourceDefault
				if set[k] {
					want = path
				}
				if ks.Source != want {
					t.Errorf("%s from %s, want %s", k, ks.Source, want)
				}
			}
		})
	}
}

func TestPath(t *testing.T) {
	cases := []struct {
		name, override, env, want string
	}{
		{"flag wins", "/a.toml", "/b.toml", "/a.toml"},
		{"env", "", "/b.toml", "/b.toml"},
		{"default", "", "", DefaultPath},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvPath, tc.env)
			if got := Path(tc.override); got != tc.want {
				t.Fatalf("Path = %s, want %s", got, tc.want)
			}
		})
	}
}
