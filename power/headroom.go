package power

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ecrae/ecrae/hostview"
)

// Headroom is the spare powered-on capacity kept per architecture (the
// CPU's ISA: an instance can go to any host of its ISA):
// --power-headroom "hosts=2,vcpus=10%,ram=20%".
type Headroom struct {
	Hosts     int     // empty, powered-on, placeable hosts
	VCPUShare float64 // free vCPUs ÷ all vCPUs of the powered-on placeable hosts, in [0,1]
	RAMShare  float64 // the same for memory (what usually runs out first)
}

// DefaultHeadroom is ecrae serve's --power-headroom, and the headroom the
// simulator's ecrae policy keeps (sim/), so that both run one rule with
// one setting: one empty host per architecture, for a boot that needs a
// whole host, and a tenth of the vCPUs free.
const DefaultHeadroom = "hosts=1,vcpus=10%"

// ParseHeadroom reads "hosts=N,vcpus=P%,ram=P%" (any part may be left
// out).
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
		case "vcpus", "ram":
			p, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
			if err != nil || !strings.HasSuffix(v, "%") || !(p >= 0 && p <= 100) {
				return h, fmt.Errorf("%s: %q is not a percentage in 0%%-100%%", k, clip(v))
			}
			if k == "vcpus" {
				h.VCPUShare = p / 100
			} else {
				h.RAMShare = p / 100
			}
		default:
			return h, fmt.Errorf("unknown part %q (want hosts, vcpus or ram)", clip(k))
		}
	}
	return h, nil
}

func (h Headroom) String() string {
	return fmt.Sprintf("hosts=%d,vcpus=%g%%,ram=%g%%", h.Hosts, h.VCPUShare*100, h.RAMShare*100)
}

// Spare is the spare capacity of one architecture's powered-on hosts.
type Spare struct {
	EmptyHosts int
	FreeVCPUs  float64
	VCPUs      float64
	FreeRAMMB  float64
	RAMMB      float64
}

func share(free, all float64) float64 {
	if all <= 0 {
		return 0
	}
	return free / all
}

// Share of the vCPUs that is free; 0 when there are none.
func (s Spare) Share() float64 { return share(s.FreeVCPUs, s.VCPUs) }

// RAMShare of the memory that is free; 0 when there is none.
func (s Spare) RAMShare() float64 { return share(s.FreeRAMMB, s.RAMMB) }

// Meets reports whether s keeps the headroom.
func (h Headroom) Meets(s Spare) bool {
	return s.EmptyHosts >= h.Hosts && s.Share() >= h.VCPUShare && s.RAMShare() >= h.RAMShare
}

// Without is s less one empty host h (the one about to be powered off).
func (s Spare) Without(h *hostview.Host) Spare { return s.Less(vcpus(h), ram(h)) }

// Less is s less one empty host of vcpus vCPUs and ramMB of memory. The
// simulator (sim/) keeps the same headroom through it and More, with its
// own units.
func (s Spare) Less(vcpus, ramMB float64) Spare {
	s.EmptyHosts--
	s.FreeVCPUs -= vcpus
	s.VCPUs -= vcpus
	s.FreeRAMMB -= ramMB
	s.RAMMB -= ramMB
	return s
}

// More is s plus one empty host of vcpus vCPUs and ramMB of memory (one
// woken).
func (s Spare) More(vcpus, ramMB float64) Spare {
	s.EmptyHosts++
	s.FreeVCPUs += vcpus
	s.VCPUs += vcpus
	s.FreeRAMMB += ramMB
	s.RAMMB += ramMB
	return s
}

// ram is a host's schedulable memory in MB.
func ram(h *hostview.Host) float64 {
	r := h.Capacity.RAMRatio
	if r <= 0 {
		r = 1
	}
	return float64(h.Capacity.MemoryMB-h.Capacity.MemoryMBReserved) * r
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
// instance now (service placeable, not off) or soon (woken by ECRAE and
// booting: their service is enabled once they report), by group (ISA). A
// booting host is capacity on its way: not counting it would wake another
// host at every tick of its boot.
func SpareByGroup(hosts []hostview.Host, group func(*hostview.Host) string, off, woken func(string) bool) map[string]Spare {
	out := map[string]Spare{}
	for i := range hosts {
		h := &hosts[i]
		if !h.Compute || off(h.Name) || !(h.Service.Placeable() || woken(h.Name)) {
			continue
		}
		s := out[group(h)]
		v := vcpus(h)
		s.VCPUs += v
		s.FreeVCPUs += max(0, v-float64(h.Usage.VCPUs))
		r := ram(h)
		s.RAMMB += r
		s.FreeRAMMB += max(0, r-float64(h.Usage.MemoryMB))
		if h.Instances == 0 {
			s.EmptyHosts++
		}
		out[group(h)] = s
	}
	return out
}
