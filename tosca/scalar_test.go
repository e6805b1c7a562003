package tosca

import "testing"

func TestParseScalarUnit(t *testing.T) {
	cases := []struct {
		typ, in string
		base    float64 // in bytes, Hz, seconds or bits per second
		unit    string
		err     string
	}{
		{typeSize, "2 GB", 2e9, "GB", ""},
		{typeSize, "512 MiB", 512 << 20, "MiB", ""},
		{typeSize, "1.5 GiB", 1.5 * (1 << 30), "GiB", ""},
		{typeSize, "10GB", 10e9, "GB", ""},           // no space: tosca-parser accepts it too
		{typeSize, "4 gb", 4e9, "GB", ""},            // units match case-insensitively
		{typeSize, " 1 kB ", 1000, "kB", ""},         // surrounding blanks
		{typeSize, "1e3 B", 1000, "B", ""},           // an exponent is part of the number
		{typeFrequency, "2.4 GHz", 2.4e9, "GHz", ""}, // 2.4 × 10⁹
		{typeFrequency, "800 MHz", 8e8, "MHz", ""},
		{typeTime, "90 s", 90, "s", ""},
		{typeTime, "2 h", 7200, "h", ""},
		{typeBitrate, "10 Gbps", 1e10, "Gbps", ""},
		{typeBitrate, "1 GBps", 8e9, "GBps", ""}, // bytes: 8 bits each
		{typeSize, "2 GX", 0, "", "bad scalar-unit.size '2 GX': unknown unit 'GX' (use one of B, kB, KiB, MB, MiB, GB, GiB, TB, TiB)"},
		{typeSize, "2048", 0, "", "bad scalar-unit.size '2048': no unit (use one of B, kB, KiB, MB, MiB, GB, GiB, TB, TiB)"},
		{typeSize, "GB", 0, "", "bad scalar-unit.size 'GB': expected a number and a unit, as '2 GB'"},
		{typeSize, "-1 GB", 0, "", "bad scalar-unit.size '-1 GB': must not be negative"},
		{typeSize, "1.2.3 GB", 0, "", "bad scalar-unit.size '1.2.3 GB': '1.2.3' is not a number"},
		{typeFrequency, "2 GB", 0, "", "bad scalar-unit.frequency '2 GB': unknown unit 'GB' (use one of Hz, kHz, MHz, GHz)"},
		{typeBitrate, "1 gbps", 0, "", "bad scalar-unit.bitrate '1 gbps': unknown unit 'gbps' (use one of bps, Kbps, Kibps, Mbps, Mibps, Gbps, Gibps, Tbps, Tibps, Bps, KBps, KiBps, MBps, MiBps, GBps, GiBps, TBps, TiBps)"},
	}
	for _, c := range cases {
		t.Run(c.typ+" "+c.in, func(t *testing.T) {
			got, err := parseScalarUnit(c.typ, c.in)
			if errText(err) != c.err {
				t.Fatalf("error %q, want %q", errText(err), c.err)
			}
			if err == nil && (got.base != c.base || got.unit != c.unit) {
				t.Errorf("got %v %s (%v base), want unit %s base %v", got.number, got.unit, got.base, c.unit, c.base)
			}
		})
	}
}

func TestFormatSizes(t *testing.T) {
	for _, c := range []struct {
		mib  int64
		want string
	}{{2048, "2 GiB"}, {1536, "1536 MiB"}, {65536, "64 GiB"}, {0, "0 MiB"}} {
		if got := formatMiB(c.mib); got != c.want {
			t.Errorf("formatMiB(%d) = %s, want %s", c.mib, got, c.want)
		}
	}
	if got := formatMHz(2250); got != "2.25 GHz" {
		t.Errorf("formatMHz(2250) = %s", got)
	}
}
