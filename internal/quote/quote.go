// Package quote quotes user values in error messages, at most MaxBytes of
// them: an error echoing a 1 MiB field whole is unreadable, and over gRPC
// it no longer fits in the status trailer (the call then fails with
// INTERNAL: RST_STREAM instead of the InvalidArgument it earned).
package quote

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxBytes is the most of a value an error message quotes.
const MaxBytes = 100

// Value is s quoted like %q, cut to at most its first MaxBytes bytes (on a
// UTF-8 character boundary) and followed by "…(N bytes)" when longer.
func Value(s string) string {
	if len(s) <= MaxBytes {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s…(%d bytes)", strconv.Quote(s[:cut(s)]), len(s))
}

// Short is s cut like Value, not quoted: for messages that quote in their
// own style (TOSCA's 'name').
func Short(s string) string {
	if len(s) <= MaxBytes {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:cut(s)], len(s))
}

// Bytes is Value of b, without copying more of b than it quotes.
func Bytes(b []byte) string {
	if len(b) <= MaxBytes {
		return strconv.Quote(string(b))
	}
	head := string(b[:min(len(b), MaxBytes+utf8.UTFMax)])
	return fmt.Sprintf("%s…(%d bytes)", strconv.Quote(head[:cut(head)]), len(b))
}

// cut is where to cut s (longer than MaxBytes): MaxBytes, or the start of
// a valid character that straddles it. Invalid bytes are cut anywhere,
// since %q shows them as \x escapes one by one.
func cut(s string) int {
	for i := MaxBytes; i > MaxBytes-utf8.UTFMax && i > 0; i-- {
		if !utf8.RuneStart(s[i]) {
			continue
		}
		if r, size := utf8.DecodeRuneInString(s[i:]); r != utf8.RuneError && i < MaxBytes && i+size > MaxBytes {
			return i
		}
		return MaxBytes
	}
	return MaxBytes
}
