package api

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzStreamHeader parses arbitrary preambles and round-trips arbitrary
// headers. ReadStreamHeader must not panic, must never read past the
// newline that ends the header, must return only headers that Validate
// accepts, and whatever WriteStreamHeader writes must read back equal.
func FuzzStreamHeader(f *testing.F) {
	for _, s := range []struct {
		raw              string
		cid, eid, stream string
	}{
		{`{"container_id":"c1","stream":"stdout"}` + "\npayload", "c1", "", "stdout"},
		{`{"container_id":"c1","exec_id":"e1","stream":"stdin"}` + "\n", "c1", "e1", "stdin"},
		{`{"container_id":"c","stream":"stdlog"}` + "\n", "c", "e", "stdlog"},
		{`{"stream":"stdout"}` + "\n", "", "", "stderr"},
		{`{"container_id":"c"`, "a/../b", "", "stdout"},
		{"hello\n", "\xff", "\x00", "stdout"},
		{strings.Repeat("x", maxHeader+1), strings.Repeat("c", 5000), "", "stdout"},
		{`{"container_id":"c","stream":"stdout","container_id":"d"}` + "\n", "c\n", "e\n", "stdout"},
		{`{"Container_ID":"c","STREAM":"stdout"}` + "\nrest", "c-1.2_3", "", "stderr"},
		{`null` + "\n", "..", "", "stdin"},
		{"\n", "c", "", "stdout\n"},
	} {
		f.Add([]byte(s.raw), s.cid, s.eid, s.stream)
	}
	f.Fuzz(func(t *testing.T, raw []byte, cid, eid, stream string) {
		r := bytes.NewReader(raw)
		h, err := ReadStreamHeader(r)
		if err == nil {
			if verr := h.Validate(); verr != nil {
				t.Fatalf("ReadStreamHeader(%q) returned an invalid header %+v: %v", raw, h, verr)
			}
			nl := bytes.IndexByte(raw, '\n')
			if nl < 0 || nl >= maxHeader {
				t.Fatalf("ReadStreamHeader(%q) accepted a header without a newline within %d bytes", raw, maxHeader)
			}
			if rest, _ := io.ReadAll(r); !bytes.Equal(rest, raw[nl+1:]) {
				t.Fatalf("ReadStreamHeader(%q) consumed stream data: rest %q", raw, rest)
			}
			roundTrip(t, h)
		} else if !strings.HasPrefix(err.Error(), "read stream header") && !strings.HasPrefix(err.Error(), "decode stream header") && !strings.HasPrefix(err.Error(), "stream header") {
			t.Fatalf("ReadStreamHeader(%q): unexpected error form %v", raw, err)
		}
		roundTrip(t, StreamHeader{ContainerID: cid, ExecID: eid, Stream: Stream(stream)})
	})
}

// roundTrip writes h and reads it back: a header the writer accepts must
// come back equal, with the bytes after it untouched.
func roundTrip(t *testing.T, h StreamHeader) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteStreamHeader(&buf, h); err != nil {
		if buf.Len() != 0 {
			t.Fatalf("WriteStreamHeader(%+v) wrote %q and failed: %v", h, buf.Bytes(), err)
		}
		if errors.Is(err, io.ErrShortWrite) {
			t.Fatalf("WriteStreamHeader(%+v): %v", h, err)
		}
		return
	}
	buf.WriteString("data")
	got, err := ReadStreamHeader(&buf)
	if err != nil {
		t.Fatalf("header %+v written as %q does not read back: %v", h, buf.Bytes(), err)
	}
	if got != h {
		t.Fatalf("round trip of %+v gave %+v", h, got)
	}
	if rest := buf.String(); rest != "data" {
		t.Fatalf("round trip of %+v consumed stream data: rest %q", h, rest)
	}
}
