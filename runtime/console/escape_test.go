package console

import (
	"strings"
	"testing"
)

var escapeCases = []struct{ name, in, want string }{
	{name: "plain text", in: "Linux version 6.1 (gcc) #1 SMP\n\tok", want: "Linux version 6.1 (gcc) #1 SMP\n\tok"},
	{name: "empty", in: "", want: ""},
	{name: "CSI clear screen", in: "\x1b[2J\x1b[H", want: `\x1b[2J\x1b[H`},
	{name: "OSC title with BEL", in: "\x1b]0;pwned\x07", want: `\x1b]0;pwned\x07`},
	{name: "OSC 52 clipboard with ST", in: "\x1b]52;c;cm0gLXJmIC8=\x1b\\", want: `\x1b]52;c;cm0gLXJmIC8=\x1b\`},
	{name: "CRLF becomes LF", in: "a\r\nb\r\n", want: "a\nb\n"},
	{name: "bare CR", in: "progress 10%\rprogress 20%", want: `progress 10%\x0dprogress 20%`},
	{name: "CR CR LF", in: "a\r\r\n", want: `a\x0d` + "\n"},
	{name: "BEL", in: "ding\x07", want: `ding\x07`},
	{name: "NUL", in: "a\x00b", want: `a\x00b`},
	{name: "DEL and backspace", in: "a\x7f\x08b", want: `a\x7f\x08b`},
	{name: "invalid UTF-8", in: "a\xff\xfeb", want: `a\xff\xfeb`},
	{name: "truncated sequence", in: "a\xe4\xb8", want: `a\xe4\xb8`},
	{name: "overlong encoding of ESC", in: "\xc0\x9b", want: `\xc0\x9b`},
	{name: "C1 CSI", in: "a\u009b31mb", want: `a\x9b31mb`},
	{name: "multi-byte UTF-8 kept", in: "héllo → 世界 😀", want: "héllo → 世界 😀"},
	{name: "bidi override escaped", in: "a\u202eb", want: `a\u202eb`},
	{name: "zero width space escaped", in: "a\u200bb", want: `a\u200bb`},
	{name: "tag character escaped", in: "a\U000e0041b", want: `a\U000e0041b`},
	{name: "valid U+FFFD kept", in: "\uFFFD", want: "\uFFFD"},
}

func TestEscape(t *testing.T) {
	for _, tc := range escapeCases {
		t.Run(tc.name, func(t *testing.T) {
			got := Escape([]byte(tc.in))
			if got != tc.want {
				t.Fatalf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if strings.ContainsFunc(got, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' || r == 0x7f }) {
				t.Fatalf("Escape(%q) = %q holds a control character", tc.in, got)
			}
		})
	}
}

// TestEscaper: whatever the pieces a console is read in, the Escaper
// writes what Escape makes of the whole.
func TestEscaper(t *testing.T) {
	for _, tc := range escapeCases {
		t.Run(tc.name, func(t *testing.T) {
			for cut := 0; cut <= len(tc.in); cut++ {
				for cut2 := cut; cut2 <= len(tc.in); cut2++ {
					var out strings.Builder
					e := NewEscaper(&out)
					for _, piece := range []string{tc.in[:cut], tc.in[cut:cut2], tc.in[cut2:]} {
						if n, err := e.Write([]byte(piece)); err != nil || n != len(piece) {
							t.Fatalf("Write = %d, %v", n, err)
						}
					}
					if err := e.Flush(); err != nil {
						t.Fatal(err)
					}
					if out.String() != tc.want {
						t.Fatalf("pieces %q %q %q: %q, want %q", tc.in[:cut], tc.in[cut:cut2], tc.in[cut2:], out.String(), tc.want)
					}
				}
			}
		})
	}
}
