package power

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Endpoint
		wantErr string
	}{
		// No port: RMCP's 623.
		{in: "ipmi://10.0.0.5", want: Endpoint{Raw: "ipmi://10.0.0.5", Scheme: SchemeIPMI, Host: "10.0.0.5", Port: 623}},
		{in: "ipmi://[::1]:6230", want: Endpoint{Raw: "ipmi://[::1]:6230", Scheme: SchemeIPMI, Host: "::1", Port: 6230}},
		{in: "redfish://bmc-7/Systems/System.Embedded.1", want: Endpoint{Raw: "redfish://bmc-7/Systems/System.Embedded.1", Scheme: SchemeRedfish, Host: "bmc-7", System: "System.Embedded.1"}},
		{in: "ironic://1be26c0b-03f2-4d2e-ae87-c02d7f33c123", want: Endpoint{Raw: "ironic://1be26c0b-03f2-4d2e-ae87-c02d7f33c123", Scheme: SchemeIronic, Node: "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"}},
		{in: "ipmi://admin:secret@10.0.0.5", wantErr: "must not carry credentials"},
		{in: "ipmi://10.0.0.5:0", wantErr: "a port in 1-65535"},
		{in: "redfish://bmc/Chassis/1", wantErr: "redfish://ADDR[:PORT]/Systems/ID"},
		{in: "http://bmc", wantErr: "scheme ipmi, redfish or ironic"},
		{in: "", wantErr: "want ipmi://"},
		{in: "ipmi://h?x=1", wantErr: "no query"},
	} {
		got, err := ParseEndpoint(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseEndpoint(%q) = %v, want error %q", tc.in, err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error quotes the password: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseEndpoint(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseEndpoint(%q) (-want,+got):\n%s", tc.in, diff)
		}
	}
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"ipmi://10.0.0.5:623", "redfish://b/Systems/1", "ironic://n", "ipmi://u:p@h", "redfish+http://[::1]:80/Systems/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEndpoint(s)
		if err != nil {
			if len(err.Error()) > 600 { // 100 bytes quoted (up to 4x escaped) and the message
				t.Errorf("error too long: %d bytes", len(err.Error()))
			}
			return
		}
		if e.Raw != s || (e.Scheme != SchemeIronic && e.Host == "") || (e.Scheme == SchemeIronic && e.Node == "") {
			t.Errorf("ParseEndpoint(%q) = %+v", s, e)
		}
	})
}

func TestParseCredentials(t *testing.T) {
	f, err := ParseCredentials([]byte("default: {username: admin, password: pw}\nhosts:\n  c7: {username: root, password: calvin}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := f.For("c7"); c != (Credentials{"root", "calvin"}) {
		t.Errorf("c7: %+v", c)
	}
	if c, ok := f.For("c1"); !ok || c != (Credentials{"admin", "pw"}) {
		t.Errorf("default: %+v", c)
	}
	for in, want := range map[string]string{
		"default: {username: admin, pasword: pw}": "field pasword not found",
		"hosts: {c1: {password: pw}}":             `hosts["c1"]: username is empty`,
		"default: [1]":                            "cannot unmarshal",
	} {
		if _, err := ParseCredentials([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCredentials(%q) = %v, want %q", in, err, want)
		}
	}
	if f, err := ParseCredentials(nil); err != nil || f == nil {
		t.Errorf("empty file: %v", err)
	}
}

func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte("default: {username: a, password: b}\nhosts: {h: {username: c, password: d}}\n"))
	f.Add([]byte("hosts: {h: {password: p}}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCredentials(b)
		if err == nil && c == nil {
			t.Error("nil file without an error")
		}
	})
}

func TestDefaultHeadroom(t *testing.T) {
	if h, err := ParseHeadroom(DefaultHeadroom); err != nil || h != (Headroom{Hosts: 1, VCPUShare: 0.1}) {
		t.Errorf("ParseHeadroom(DefaultHeadroom) = %+v, %v", h, err)
	}
}

func TestParseHeadroom(t *testing.T) {
	for in, want := range map[string]Headroom{
		"":                  {},
		"hosts=2,vcpus=10%": {Hosts: 2, VCPUShare: 0.10},
		"vcpus=12.5%":       {VCPUShare: 0.125},
		"hosts=0,ram=30%":   {RAMShare: 0.30},
	} {
		if got, err := ParseHeadroom(in); err != nil || got != want {
			t.Errorf("ParseHeadroom(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"hosts=-1", "vcpus=10", "vcpus=101%", "ram=NaN%", "cores=2", "hosts"} {
		if _, err := ParseHeadroom(in); err == nil {
			t.Errorf("ParseHeadroom(%q) accepted", in)
		}
	}
}

func FuzzParseHeadroom(f *testing.F) {
	f.Add("hosts=2,vcpus=10%")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHeadroom(s)
		if err == nil && (h.Hosts < 0 || !(h.VCPUShare >= 0 && h.VCPUShare <= 1) || !(h.RAMShare >= 0 && h.RAMShare <= 1)) {
			t.Errorf("ParseHeadroom(%q) = %+v", s, h)
		}
	})
}

func TestHeadroomMeets(t *testing.T) {
	// 2 empty 8-vCPU hosts of 4, 12 of 32 vCPUs free: 37.5 %; 16 of 64 GB
	// free: 25 %.
	s := Spare{EmptyHosts: 2, FreeVCPUs: 12, VCPUs: 32, FreeRAMMB: 16384, RAMMB: 65536}
	for _, tc := range []struct {
		h    Headroom
		want bool
	}{
		{Headroom{Hosts: 2, VCPUShare: 0.375}, true},
		{Headroom{Hosts: 3}, false},
		{Headroom{VCPUShare: 0.38}, false},
		{Headroom{RAMShare: 0.25}, true},
		{Headroom{RAMShare: 0.26}, false},
	} {
		if got := tc.h.Meets(s); got != tc.want {
			t.Errorf("%v.Meets(%+v) = %v", tc.h, s, got)
		}
	}
}

// Less and More take one empty host away and give one back, in the
// service's units (vCPUs with their ratio, MB) or the simulator's (MIPS, no
// RAM): 3 empty of 4 hosts of 1000 vCPUs and 2000 MB, 3500 vCPUs and 6000
// MB free; less one: 2 empty, 2500 of 3000 vCPUs (83 %), 4000 of 6000 MB.
func TestSpareLessMore(t *testing.T) {
	s := Spare{EmptyHosts: 3, FreeVCPUs: 3500, VCPUs: 4000, FreeRAMMB: 6000, RAMMB: 8000}
	less := s.Less(1000, 2000)
	if want := (Spare{EmptyHosts: 2, FreeVCPUs: 2500, VCPUs: 3000, FreeRAMMB: 4000, RAMMB: 6000}); less != want {
		t.Errorf("Less: %+v, want %+v", less, want)
	}
	if back := less.More(1000, 2000); back != s {
		t.Errorf("More after Less: %+v, want %+v", back, s)
	}
	if got := (Spare{}).More(1000, 0); got != (Spare{EmptyHosts: 1, FreeVCPUs: 1000, VCPUs: 1000}) {
		t.Errorf("More: %+v", got)
	}
	// With a headroom of 2 empty hosts and 10 % of the vCPUs:
	// 83 % free but 2 empty hosts holds; one fewer does not.
	h := Headroom{Hosts: 2, VCPUShare: 0.1}
	if !h.Meets(less) || h.Meets(less.Less(1000, 2000)) {
		t.Errorf("Meets: %v for %+v, %v for one fewer", h.Meets(less), less, h.Meets(less.Less(1000, 2000)))
	}
}
