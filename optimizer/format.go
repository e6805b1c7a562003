package optimizer

import (
	"math"
	"strconv"
)

// Explanations and reasons are appended to one byte buffer per call with
// these helpers, then the buffer becomes one string that every Explanation or
// Reason of the call is a substring of: a call allocates its text once, not
// once per host.

// appendFixed appends x with prec (0..3) decimals. It uses integer
// arithmetic (several times faster than strconv's 'f' formatting) when
// |x| < 1e15, and strconv otherwise (huge, NaN, Inf). Halves round away from
// zero; "-0.0" is written "0.0".
func appendFixed(b []byte, x float64, prec int) []byte {
	ax := math.Abs(x)
	if !(ax < 1e15) {
		return strconv.AppendFloat(b, x, 'f', prec, 64)
	}
	scale := 1.0
	for range prec {
		scale *= 10
	}
	n := uint64(ax*scale + 0.5) // < 1e18: fits
	if n != 0 && x < 0 {
		b = append(b, '-')
	}
	var d [24]byte
	i := len(d)
	for range prec {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
	}
	if prec > 0 {
		i--
		d[i] = '.'
	}
	for {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

// appendPct appends a share in [0, 1] as a whole percentage: 0.452 → "45%".
func appendPct(b []byte, x float64) []byte {
	return append(appendFixed(b, x*100, 0), '%')
}

// appendShort appends x in its shortest form ("16", "1.5"), for counts and
// ratios in reasons. Whole numbers take appendFixed's fast path.
func appendShort(b []byte, x float64) []byte {
	if x == math.Trunc(x) && math.Abs(x) < 1e15 {
		return appendFixed(b, x, 0)
	}
	return strconv.AppendFloat(b, x, 'f', -1, 64)
}

// appendRatio appends an allocation ratio with at least one decimal: "1.0",
// "1.5", "16.0".
func appendRatio(b []byte, r float64) []byte {
	if r == math.Trunc(r) && math.Abs(r) < 1e15 {
		return appendFixed(b, r, 1)
	}
	return appendShort(b, r)
}

// span is a [start, end) range of a call's text buffer.
type span struct{ start, end int }

func (s span) of(text string) string { return text[s.start:s.end] }
