package statedir

import (
	"os"
	"strings"
	"testing"
)

func TestPodRecord(t *testing.T) {
	cases := []struct {
		name    string
		write   *Pod   // written with WritePod
		raw     string // written as is instead
		want    Pod
		wantErr string
	}{
		{name: "round trip", write: &Pod{Name: "web", Namespace: "shop", UID: "u-1"}, want: Pod{Name: "web", Namespace: "shop", UID: "u-1"}},
		{name: "zero pod writes nothing", write: &Pod{}},
		{name: "no record", want: Pod{}},
		{name: "garbage", raw: "{not json", wantErr: "pod record"},
		{name: "oversized", raw: `{"name":"` + strings.Repeat("x", maxPodFile) + `"}`, wantErr: "over 4096 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(t.TempDir(), "sb")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(d.Path(), 0o700); err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.write != nil:
				if err := WritePod(d, *tc.write); err != nil {
					t.Fatal(err)
				}
				if tc.write.IsZero() {
					if _, err := os.Stat(d.File(PodFile)); !os.IsNotExist(err) {
						t.Errorf("zero pod left a record: %v", err)
					}
				}
			case tc.raw != "":
				if err := os.WriteFile(d.File(PodFile), []byte(tc.raw), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadPod(d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
