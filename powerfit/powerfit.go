// Package powerfit fits a host's 11-point power curve (watts at active
// idle, then 10 % ... 100 % load, as the KB holds it) to measured
// (utilisation, watts) samples by least squares. It does no I/O.
//
// The KB's curve is piecewise linear between the points, so a sample at
// utilisation u lies between points k and k+1 (u = (k+t)/10) and the
// curve predicts (1-t)·w[k] + t·w[k+1]. Least squares over the samples is
// then a linear problem whose normal matrix is tridiagonal: Stats keeps
// it (and the right-hand side) as running sums, in constant memory per
// host, instead of the samples themselves.
package powerfit

import (
	"errors"
	"fmt"
	"math"
)

// Points is the number of points of a curve.
const Points = 11

// DefaultHalfLife is how many samples the stats hold at full weight
// before all are halved: about a day at one sample every 10 s, so that
// the fit follows the machine as it is now (new DIMMs, firmware).
const DefaultHalfLife = 8640

// Stats are the running sums of a host's samples: the normal equations
// AᵀA (Diag, Off) and Aᵀp (RHS) of the fit, Σφ per point (Weight), Σp².
type Stats struct {
	N      float64             `json:"n"` // effective number of samples
	Diag   [Points]float64     `json:"diag"`
	Off    [Points - 1]float64 `json:"off"`
	RHS    [Points]float64     `json:"rhs"`
	Weight [Points]float64     `json:"weight"`
	SumP2  float64             `json:"sum_p2"`
	MinU   float64             `json:"min_u"`
	MaxU   float64             `json:"max_u"`
}

// Add records one sample: utilisation u in [0,1], watts p ≥ 0. Once N
// reaches halfLife (0 = DefaultHalfLife) every sum is halved first.
func (s *Stats) Add(u, p float64, halfLife int) {
	if halfLife <= 0 {
		halfLife = DefaultHalfLife
	}
	if s.N >= float64(halfLife) {
		s.scale(0.5)
	}
	u = min(1, max(0, u))
	x := u * (Points - 1)
	k := min(int(x), Points-2)
	t := x - float64(k)
	a, b := 1-t, t
	s.Diag[k] += a * a
	s.Diag[k+1] += b * b
	s.Off[k] += a * b
	s.RHS[k] += a * p
	s.RHS[k+1] += b * p
	s.Weight[k] += a
	s.Weight[k+1] += b
	s.SumP2 += p * p
	if s.N == 0 || u < s.MinU {
		s.MinU = u
	}
	if s.N == 0 || u > s.MaxU {
		s.MaxU = u
	}
	s.N++
}

func (s *Stats) scale(f float64) {
	s.N *= f
	s.SumP2 *= f
	for i := range s.Diag {
		s.Diag[i] *= f
		s.RHS[i] *= f
		s.Weight[i] *= f
	}
	for i := range s.Off {
		s.Off[i] *= f
	}
}

// Result is a fitted curve.
type Result struct {
	Watts [Points]float64
	// Support is how many samples (fractionally) fell near each point:
	// a point with little support is mostly the model's, scaled.
	Support [Points]float64
	// Scale is measured ÷ modelled watts over all samples (bounded to
	// ×0.25–×4): the model scaled by it is the prior of points the
	// samples do not reach.
	Scale float64
	// RMSModel and RMSFit are the root mean square errors (W) of the
	// model's curve and of the fitted one over the samples.
	RMSModel, RMSFit float64
}

// ErrTooFew is returned when the samples cannot support a fit.
var ErrTooFew = errors.New("too few samples")

// Fit solves min Σ(p - curve(u))² + λ Σ(w[k] - prior[k])², where prior is
// the model's curve scaled by the measured ÷ modelled ratio over the
// samples, then makes the curve non-decreasing (as the KB requires) by a
// support-weighted pool-adjacent-violators pass. λ (≥ 0) is the weight of
// the prior in samples per point: enough to fix the points no sample
// reaches, small against a point many samples reach.
func Fit(s Stats, model []float64, lambda float64, minSamples float64) (Result, error) {
	if len(model) != Points {
		return Result{}, fmt.Errorf("the model has %d points, want %d", len(model), Points)
	}
	if s.N < max(1, minSamples) {
		return Result{}, fmt.Errorf("%w: %.0f, want at least %.0f", ErrTooFew, s.N, max(1, minSamples))
	}
	if lambda < 0 || math.IsNaN(lambda) {
		return Result{}, fmt.Errorf("prior weight %v: want ≥ 0", lambda)
	}
	var r Result
	// Σp = Σ_k RHS[k] (the two weights of a sample sum to 1); Σ model(u)
	// = Σ_k model[k]·Weight[k].
	var sumP, sumM float64
	for k := range Points {
		sumP += s.RHS[k]
		sumM += model[k] * s.Weight[k]
	}
	r.Scale = 1
	if sumM > 0 {
		r.Scale = min(4, max(0.25, sumP/sumM))
	}
	lambda = max(lambda, 1e-9) // a point no sample reaches still needs a value
	var diag, rhs [Points]float64
	for k := range Points {
		diag[k] = s.Diag[k] + lambda
		rhs[k] = s.RHS[k] + lambda*r.Scale*model[k]
	}
	w, err := solveTridiagonal(diag, s.Off, rhs)
	if err != nil {
		return Result{}, err
	}
	w = nonDecreasing(w, diag)
	for k := range Points {
		r.Watts[k] = max(0, w[k])
		r.Support[k] = s.Weight[k]
	}
	r.RMSFit = rms(s, r.Watts[:])
	r.RMSModel = rms(s, model)
	return r, nil
}

// rms is sqrt(Σ(p - Aw)² / N) = sqrt((Σp² - 2wᵀAᵀp + wᵀAᵀAw) / N).
func rms(s Stats, w []float64) float64 {
	var wAp, wAAw float64
	for k := range Points {
		wAp += w[k] * s.RHS[k]
		wAAw += w[k] * w[k] * s.Diag[k]
	}
	for k := range Points - 1 {
		wAAw += 2 * w[k] * w[k+1] * s.Off[k]
	}
	return math.Sqrt(max(0, s.SumP2-2*wAp+wAAw) / s.N)
}

// solveTridiagonal solves the symmetric system with diagonal d and
// off-diagonal e (Thomas algorithm; d dominates, so no pivoting).
func solveTridiagonal(d [Points]float64, e [Points - 1]float64, b [Points]float64) ([Points]float64, error) {
	var c, x [Points]float64
	for i := range Points {
		den := d[i]
		if i > 0 {
			den -= e[i-1] * c[i-1]
			b[i] -= e[i-1] * b[i-1]
		}
		if !(math.Abs(den) > 1e-12) {
			return x, errors.New("singular normal equations")
		}
		if i < Points-1 {
			c[i] = e[i] / den
		}
		b[i] /= den
	}
	x[Points-1] = b[Points-1]
	for i := Points - 2; i >= 0; i-- {
		x[i] = b[i] - c[i]*x[i+1]
	}
	return x, nil
}

// nonDecreasing is the weighted isotonic regression of w (pool adjacent
// violators): noisy samples must not give a curve that falls with load.
func nonDecreasing(w, weight [Points]float64) [Points]float64 {
	type block struct {
		sum, wt float64
		n       int
	}
	var bs []block
	for i := range Points {
		bs = append(bs, block{w[i] * weight[i], weight[i], 1})
		for len(bs) > 1 {
			a, b := bs[len(bs)-2], bs[len(bs)-1]
			if a.sum/a.wt <= b.sum/b.wt {
				break
			}
			bs = append(bs[:len(bs)-2], block{a.sum + b.sum, a.wt + b.wt, a.n + b.n})
		}
	}
	var out [Points]float64
	i := 0
	for _, b := range bs {
		for range b.n {
			out[i] = b.sum / b.wt
			i++
		}
	}
	return out
}
