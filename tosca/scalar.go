package tosca

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The TOSCA scalar-unit types.
const (
	typeSize      = "scalar-unit.size"
	typeFrequency = "scalar-unit.frequency"
	typeTime      = "scalar-unit.time"
	typeBitrate   = "scalar-unit.bitrate"
)

type unit struct {
	name   string
	factor float64 // in the base unit: bytes, Hz, seconds, bits per second
}

// units lists each scalar-unit type's units, smallest first (the order of
// the messages).
func units(typ string) []unit {
	switch typ {
	case typeSize:
		return []unit{{"B", 1}, {"kB", 1e3}, {"KiB", 1 << 10}, {"MB", 1e6}, {"MiB", 1 << 20},
			{"GB", 1e9}, {"GiB", 1 << 30}, {"TB", 1e12}, {"TiB", 1 << 40}}
	case typeFrequency:
		return []unit{{"Hz", 1}, {"kHz", 1e3}, {"MHz", 1e6}, {"GHz", 1e9}}
	case typeTime:
		return []unit{{"ns", 1e-9}, {"us", 1e-6}, {"ms", 1e-3}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}}
	case typeBitrate:
		return []unit{{"bps", 1}, {"Kbps", 1e3}, {"Kibps", 1 << 10}, {"Mbps", 1e6}, {"Mibps", 1 << 20},
			{"Gbps", 1e9}, {"Gibps", 1 << 30}, {"Tbps", 1e12}, {"Tibps", 1 << 40},
			{"Bps", 8}, {"KBps", 8e3}, {"KiBps", 8 << 10}, {"MBps", 8e6}, {"MiBps", 8 << 20},
			{"GBps", 8e9}, {"GiBps", 8 << 30}, {"TBps", 8e12}, {"TiBps", 8 << 40}}
	}
	return nil
}

func isScalarUnit(typ string) bool { return units(typ) != nil }

// scalarUnit is a parsed scalar-unit value.
type scalarUnit struct {
	number float64
	unit   string  // as the type spells it
	base   float64 // number × the unit's factor
}

func (s scalarUnit) String() string {
	return strconv.FormatFloat(s.number, 'f', -1, 64) + " " + s.unit
}

// parseScalarUnit reads "<number> <unit>" ("2 GB", "512 MiB", "2.4 GHz").
// Units match case-insensitively, as tosca-parser accepts them, except for
// bitrates, where the case tells bits (b) from bytes (B).
func parseScalarUnit(typ, s string) (scalarUnit, error) {
	us := units(typ)
	if us == nil {
		return scalarUnit{}, fmt.Errorf("%s is not a scalar-unit type", typ)
	}
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	// An exponent belongs to the number only if digits follow it ("1e3 B"
	// but not "1 EB", which is no unit anyway).
	if i < len(t) && (t[i] == 'e' || t[i] == 'E') {
		j := i + 1
		if j < len(t) && (t[j] == '+' || t[j] == '-') {
			j++
		}
		if j < len(t) && t[j] >= '0' && t[j] <= '9' {
			for j < len(t) && t[j] >= '0' && t[j] <= '9' {
				j++
			}
			i = j
		}
	}
	numText, unitText := t[:i], strings.TrimSpace(t[i:])
	want := unitNames(us)
	if numText == "" {
		if strings.HasPrefix(t, "-") {
			return scalarUnit{}, fmt.Errorf("bad %s %s: must not be negative", typ, quote(s))
		}
		return scalarUnit{}, fmt.Errorf("bad %s %s: expected a number and a unit, as '2 %s'", typ, quote(s), exampleUnit(typ))
	}
	n, err := strconv.ParseFloat(numText, 64)
	if err != nil || math.IsInf(n, 0) {
		return scalarUnit{}, fmt.Errorf("bad %s %s: %s is not a number", typ, quote(s), quote(numText))
	}
	if unitText == "" {
		return scalarUnit{}, fmt.Errorf("bad %s %s: no unit (use one of %s)", typ, quote(s), want)
	}
	for _, u := range us {
		if u.name == unitText || typ != typeBitrate && strings.EqualFold(u.name, unitText) {
			return scalarUnit{number: n, unit: u.name, base: n * u.factor}, nil
		}
	}
	return scalarUnit{}, fmt.Errorf("bad %s %s: unknown unit %s (use one of %s)", typ, quote(s), quote(unitText), want)
}

func unitNames(us []unit) string {
	names := make([]string, len(us))
	for i, u := range us {
		names[i] = u.name
	}
	return strings.Join(names, ", ")
}

func exampleUnit(typ string) string {
	switch typ {
	case typeSize:
		return "GB"
	case typeFrequency:
		return "GHz"
	case typeTime:
		return "s"
	}
	return "Mbps"
}

// formatMiB writes a size in MiB as TOSCA text, in GiB when whole.
func formatMiB(mib int64) string {
	if mib > 0 && mib%1024 == 0 {
		return strconv.FormatInt(mib/1024, 10) + " GiB"
	}
	return strconv.FormatInt(mib, 10) + " MiB"
}

// formatMHz writes a frequency in MHz as TOSCA text, in GHz.
func formatMHz(mhz float64) string {
	return strconv.FormatFloat(math.Round(mhz)/1000, 'f', -1, 64) + " GHz"
}
