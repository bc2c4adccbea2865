package console

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape renders untrusted console bytes safe for a terminal. Printable
// UTF-8 (letters, marks, numbers, punctuation, symbols, spaces), '\n' and
// '\t' stay; a '\r' right before a '\n' (a tty's CRLF) is dropped; every
// other control or format character (ESC, a bare CR, BEL, NUL, DEL, C1
// controls, bidi overrides, ...) becomes a visible Go-style escape: \xNN
// up to U+00FF, \uNNNN or \UNNNNNNNN above; each invalid UTF-8 byte
// becomes \xNN. So an escape sequence from the guest cannot drive the
// operator's terminal. A backslash is left as it is, so the output is
// for reading, not for decoding.
func Escape(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&sb, `\x%02x`, b[0])
		case r == '\n' || r == '\t':
			sb.WriteRune(r)
		case r == '\r' && len(b) > 1 && b[1] == '\n':
			// CRLF from the guest's tty: keep the line break only.
		case unicode.IsGraphic(r):
			sb.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&sb, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&sb, `\u%04x`, r)
		default:
			fmt.Fprintf(&sb, `\U%08x`, r)
		}
		b = b[size:]
	}
	return sb.String()
}

// Escaper is a writer that escapes what it is given with Escape before
// passing it on, for a console read in pieces: it holds back a trailing
// incomplete UTF-8 sequence or '\r' until the next Write (or Flush), so
// that a piece boundary changes nothing.
type Escaper struct {
	w    io.Writer
	held []byte // at most utf8.UTFMax-1 bytes
	buf  []byte
}

// NewEscaper returns an Escaper writing to w.
func NewEscaper(w io.Writer) *Escaper { return &Escaper{w: w} }

// Write escapes p (with what was held back) to the underlying writer.
func (e *Escaper) Write(p []byte) (int, error) {
	e.buf = append(append(e.buf[:0], e.held...), p...)
	b := e.buf
	cut := pending(b)
	e.held = append(e.held[:0], b[cut:]...)
	if cut == 0 {
		return len(p), nil
	}
	if _, err := io.WriteString(e.w, Escape(b[:cut])); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what is held back, escaped as it is.
func (e *Escaper) Flush() error {
	if len(e.held) == 0 {
		return nil
	}
	s := Escape(e.held)
	e.held = e.held[:0]
	_, err := io.WriteString(e.w, s)
	return err
}

// pending returns where the bytes Escape could still render differently
// once more follow start in b: a final '\r' (maybe a CRLF), or an
// incomplete UTF-8 sequence at the end.
func pending(b []byte) int {
	n := len(b)
	if n > 0 && b[n-1] == '\r' {
		return n - 1
	}
	for i := n - 1; i >= 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return n
}
