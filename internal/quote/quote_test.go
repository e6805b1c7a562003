package quote

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValue(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"short", "abc", `"abc"`},
		{"exactly 100 bytes", strings.Repeat("a", 100), `"` + strings.Repeat("a", 100) + `"`},
		// 101 bytes: the first 100, then the length.
		{"101 bytes", strings.Repeat("a", 101), `"` + strings.Repeat("a", 100) + `"…(101 bytes)`},
		// 99 ASCII bytes then "é" (2 bytes, at 99–100) straddles the cut:
		// cut before it, at 99.
		{"character across the cut", strings.Repeat("a", 99) + "é" + "zz", `"` + strings.Repeat("a", 99) + `"…(103 bytes)`},
		// 98 bytes then "€" (3 bytes, 98–100): cut at 98.
		{"3-byte character across the cut", strings.Repeat("a", 98) + "€" + "z", `"` + strings.Repeat("a", 98) + `"…(102 bytes)`},
		// "é" at 98–99 ends at the cut: kept.
		{"character ending at the cut", strings.Repeat("a", 98) + "é" + "zz", `"` + strings.Repeat("a", 98) + `é"…(102 bytes)`},
		// Invalid bytes are shown escaped, cut at 100 like ASCII.
		{"invalid UTF-8", strings.Repeat("\xff", 101), `"` + strings.Repeat(`\xff`, 100) + `"…(101 bytes)`},
		{"control characters", "a\nb", `"a\nb"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Value(tc.in); got != tc.want {
				t.Errorf("Value = %s, want %s", got, tc.want)
			}
			if got := Bytes([]byte(tc.in)); got != tc.want {
				t.Errorf("Bytes = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestValueOfAMebibyte(t *testing.T) {
	got := Value(strings.Repeat("x", 1<<20))
	if len(got) > MaxBytes+30 || !strings.HasSuffix(got, "…(1048576 bytes)") {
		t.Fatalf("Value of 1 MiB = %d bytes: %.200s", len(got), got)
	}
}

func FuzzValue(f *testing.F) {
	f.Add("abc")
	f.Add(strings.Repeat("a", 99) + "é")
	f.Add(strings.Repeat("€", 40))
	f.Add(strings.Repeat("\xff", 120))
	f.Fuzz(func(t *testing.T, s string) {
		got := Value(s)
		if short := Short(s); len(s) > MaxBytes && !strings.HasPrefix(s, strings.TrimSuffix(short, fmt.Sprintf("…(%d bytes)", len(s)))) {
			t.Fatalf("Short(%q) = %q is not a head of it", s, short)
		}
		if got != Bytes([]byte(s)) {
			t.Fatalf("Value and Bytes differ for %q", s)
		}
		if len(s) <= MaxBytes {
			return
		}
		// The quoted head is a prefix of s of at most MaxBytes bytes that
		// never splits a valid character.
		n := cut(s)
		if n > MaxBytes || n < MaxBytes-utf8.UTFMax+1 {
			t.Fatalf("cut %d of %d bytes", n, len(s))
		}
		if utf8.ValidString(s) && !utf8.ValidString(s[:n]) {
			t.Fatalf("cut %d splits a character of %q", n, s)
		}
	})
}
