package power

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ecrae/ecrae/hostview"
)

// Headroom is the spare powered-on capacity kept per architecture:
// --power-headroom "hosts=2,vcpus=10%".
type Headroom struct {
	Hosts     int     // empty, powered-on, placeable hosts
	VCPUShare float64 // free vCPUs ÷ all vCPUs of the powered-on placeable hosts, in [0,1]
}

// ParseHeadroom reads "hosts=N,vcpus=P%" (either part may be left out).
func ParseHeadroom(s string) (Headroom, error) {
	var h Headroom
	if strings.TrimSpace(s) == "" {
		return h, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return h, fmt.Errorf("%q is not name=value", clip(kv))
		}
		switch k {
		case "hosts":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return h, fmt.Errorf("hosts: %q is not a whole number ≥ 0", clip(v))
			}
			h.Hosts = n
		case "vcpus":
			p, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
			if err != nil || !strings.HasSuffix(v, "%") || p < 0 || p > 100 {
				return h, fmt.Errorf("vcpus: %q is not a percentage in 0%%-100%%", clip(v))
			}
			h.VCPUShare = p / 100
		default:
			return h, fmt.Errorf("unknown part %q (want hosts or vcpus)", clip(k))
		}
	}
	return h, nil
}

func (h Headroom) String() string {
	return fmt.Sprintf("hosts=%d,vcpus=%g%%", h.Hosts, h.VCPUShare*100)
}

// Spare is the spare capacity of one architecture's powered-on hosts.
type Spare struct {
	EmptyHosts int
	FreeVCPUs  float64
	VCPUs      float64
}

// Share of the vCPUs that is free; 0 when there are none.
func (s Spare) Share() float64 {
	if s.VCPUs <= 0 {
		return 0
	}
	return s.FreeVCPUs / s.VCPUs
}

// Meets reports whether s keeps the headroom.
func (h Headroom) Meets(s Spare) bool {
	return s.EmptyHosts >= h.Hosts && s.Share() >= h.VCPUShare
}

// Without is s less one empty host h (the one about to be powered off).
func (s Spare) Without(h *hostview.Host) Spare {
	v := vcpus(h)
	s.EmptyHosts--
	s.FreeVCPUs -= v
	s.VCPUs -= v
	return s
}

// vcpus is a host's schedulable vCPUs (Placement's inventory with its
// allocation ratio).
func vcpus(h *hostview.Host) float64 {
	r := h.Capacity.CPURatio
	if r <= 0 {
		r = 1
	}
	return float64(h.Capacity.VCPUs-h.Capacity.VCPUsReserved) * r
}

// SpareByGroup sums the spare capacity of the hosts that can take an
// instance now (service placeable, not off), by group (the KB
// architecture, else the ISA).
func SpareByGroup(hosts []hostview.Host, group func(*hostview.Host) string, off func(string) bool) map[string]Spare {
	out := map[string]Spare{}
	for i := range hosts {
		h := &hosts[i]
		if !h.Compute || !h.Service.Placeable() || off(h.Name) {
			continue
		}
		s := out[group(h)]
		v := vcpus(h)
		s.VCPUs += v
		s.FreeVCPUs += max(0, v-float64(h.Usage.VCPUs))
		if h.Instances == 0 {
			s.EmptyHosts++
		}
		out[group(h)] = s
	}
	return out
}
