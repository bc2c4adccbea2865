package api

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestStreamHeaderRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		h    StreamHeader
	}{
		{"init stdout", StreamHeader{ContainerID: "c1", Stream: StreamStdout}},
		{"exec stdin", StreamHeader{ContainerID: "c1", ExecID: "e1", Stream: StreamStdin}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteStreamHeader(&buf, tc.h); err != nil {
				t.Fatal(err)
			}
			buf.WriteString("payload")
			got, err := ReadStreamHeader(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.h {
				t.Fatalf("got %+v, want %+v", got, tc.h)
			}
			rest, _ := io.ReadAll(&buf)
			if string(rest) != "payload" {
				t.Fatalf("header read consumed stream data: rest %q", rest)
			}
		})
	}
}

func TestReadStreamHeaderErrors(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"not json", "hello\n", "decode stream header"},
		{"unknown stream", `{"container_id":"c","stream":"stdlog"}` + "\n", `unknown stream "stdlog"`},
		{"no container", `{"stream":"stdout"}` + "\n", "empty container_id"},
		{"truncated", `{"container_id":"c"`, "EOF"},
		{"too long", strings.Repeat("x", maxHeader+1), "longer than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadStreamHeader(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
