package optimizer

import (
	"math"
	"strings"
)

// Watts returns the average power the curve predicts at CPU utilisation u,
// interpolating linearly between the 10 % steps, as CloudSim's
// PowerModelSpecPower does. u is clamped to [0, 1] (NaN counts as 0). A curve
// point that is negative or not finite counts as 0 W, so Watts is always
// finite and non-negative.
func (c PowerCurve) Watts(u float64) float64 {
	if !(u > 0) { // u <= 0 or NaN
		return watts(c[0])
	}
	if u >= 1 {
		return watts(c[CurvePoints-1])
	}
	x := u * (CurvePoints - 1)
	i := int(x)
	lo := watts(c[i])
	f := x - float64(i)
	if f == 0 {
		return lo
	}
	// Both points are in [0, MaxFloat64], so hi-lo cannot overflow.
	return lo + (watts(c[i+1])-lo)*f
}

// watts sanitises one curve point: negative, NaN and infinite count as 0.
func watts(w float64) float64 {
	if w >= 0 && w <= math.MaxFloat64 {
		return w
	}
	return 0
}

// NormalizeISA maps an architecture name to Nova's canonical spelling
// (nova.objects.fields.Architecture): lower case, and the usual aliases
// folded: amd64/x64/x86-64 → x86_64, arm64 → aarch64, ppc64el → ppc64le,
// i386/i486/i586/x86/x86_32 → i686. Unknown names are returned lower-cased;
// "" stays "" (unknown).
func NormalizeISA(isa string) string {
	switch isa { // fast path: already canonical, no allocation
	case "", "x86_64", "aarch64", "ppc64le", "ppc64", "i686", "s390x", "armv7l", "riscv64":
		return isa
	}
	s := strings.ToLower(strings.TrimSpace(isa))
	switch s {
	case "amd64", "x64", "x86-64", "x86_64", "em64t", "intel64":
		return "x86_64"
	case "arm64", "aarch64", "armv8", "armv8-a":
		return "aarch64"
	case "ppc64el", "ppc64le", "powerpc64le":
		return "ppc64le"
	case "ppc64", "powerpc64":
		return "ppc64"
	case "i386", "i486", "i586", "i686", "x86", "x86_32", "ia32":
		return "i686"
	case "armhf", "armv7", "armv7l", "armv7hl":
		return "armv7l"
	}
	return s
}

// EffectiveISA is the host's instruction set: Host.ISA, else its model's ISA,
// normalised by NormalizeISA; "" when neither is known.
func (h *Host) EffectiveISA() string {
	if isa := NormalizeISA(h.ISA); isa != "" {
		return isa
	}
	if h.Model != nil {
		return NormalizeISA(h.Model.ISA)
	}
	return ""
}

// cores is the number of hardware threads utilisation is measured against:
// Model.Cores, else VCPUsTotal, else 1, so that it is never zero.
func (h *Host) cores() float64 {
	if h.Model != nil && h.Model.Cores > 0 {
		return float64(h.Model.Cores)
	}
	if h.VCPUsTotal > 0 {
		return float64(h.VCPUsTotal)
	}
	return 1
}

// CurrentUtilization returns the host's CPU utilisation in [0, 1] and whether
// it was measured.
//
// A measured Utilization is clamped to [0, 1]; a measured value that is NaN or
// infinite is ignored and the host falls back to the estimate. The estimate is
//
//	min(1, VCPUsUsed × UsedCPULoad / cores)
//
// where UsedCPULoad counts as 1 when unknown (0, NaN, negative; values above
// 1 are capped at 1) and cores is Model.Cores, or VCPUsTotal, or 1 when those
// are not positive. Negative VCPUsUsed counts as 0.
func (h *Host) CurrentUtilization() (u float64, measured bool) {
	if h.UtilizationMeasured && !math.IsNaN(h.Utilization) && !math.IsInf(h.Utilization, 0) {
		return clamp01(h.Utilization), true
	}
	if h.VCPUsUsed <= 0 {
		return 0, false
	}
	return math.Min(1, float64(h.VCPUsUsed)*share(h.UsedCPULoad)/h.cores()), false
}

// share sanitises a busy share of a vCPU: (0, 1], with 0, negative, NaN and
// infinite values counting as 1 (fully busy: the safe assumption).
func share(x float64) float64 {
	if x > 0 && x < 1 {
		return x
	}
	return 1
}

// ratio sanitises an allocation ratio: 0, negative, NaN and infinite count
// as 1 (no overcommit).
func ratio(r float64) float64 {
	if r > 0 && r <= math.MaxFloat64 {
		return r
	}
	return 1
}

// positive returns x when it is a positive finite number, else 0 ("none").
func positive(x float64) float64 {
	if x > 0 && x <= math.MaxFloat64 {
		return x
	}
	return 0
}

func clamp01(x float64) float64 {
	if !(x > 0) {
		return 0
	}
	if x > 1 {
		return 1
	}
	return x
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
