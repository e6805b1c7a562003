package powerfit

import (
	"errors"
	"math"
	"testing"
)

// linear is 50 W at idle rising by 20 W a point: 50, 70, ..., 250.
var linear = func() []float64 {
	w := make([]float64, Points)
	for k := range w {
		w[k] = 50 + 20*float64(k)
	}
	return w
}()

func flat(v float64) []float64 {
	w := make([]float64, Points)
	for k := range w {
		w[k] = v
	}
	return w
}

type sample struct{ u, p float64 }

func repeat(n int, u, p float64) []sample {
	out := make([]sample, n)
	for i := range out {
		out[i] = sample{u, p}
	}
	return out
}

func TestFit(t *testing.T) {
	var onCurve []sample // 1.2× linear, at every point and half-way between
	for i := 0; i <= 20; i++ {
		u := float64(i) / 20
		onCurve = append(onCurve, sample{u, 1.2 * (50 + 200*u)})
	}
	scaled := func(f float64, m []float64) [Points]float64 {
		var w [Points]float64
		for k := range w {
			w[k] = f * m[k]
		}
		return w
	}
	cases := []struct {
		name    string
		samples []sample
		model   []float64
		lambda  float64
		want    [Points]float64
		scale   float64
	}{
		{
			// Samples on 1.2× the model: Σp / Σmodel = 1.2, and the least
			// squares solution is the curve they lie on: 60, 84, ..., 300.
			name: "on a scaled curve", samples: onCurve, model: linear, lambda: 1,
			want: scaled(1.2, linear), scale: 1.2,
		},
		{
			// 10 samples at idle (60 W) and 10 at 50 % (150 W), on points
			// (no coupling). Scale = (600+1500) / (10·50 + 10·150) = 1.05.
			// w0 = (600 + 1·1.05·50) / (10+1) = 652.5/11 = 59.318…;
			// w5 = (1500 + 1.05·150) / 11 = 1657.5/11 = 150.681…;
			// every other point is its prior 1.05·model: 73.5, 94.5, ….
			name: "idle and half load only", model: linear, lambda: 1,
			samples: append(repeat(10, 0, 60), repeat(10, 0.5, 150)...),
			want:    [Points]float64{652.5 / 11, 73.5, 94.5, 115.5, 136.5, 1657.5 / 11, 178.5, 199.5, 220.5, 241.5, 262.5},
			scale:   1.05,
		},
		{
			// Noise that makes the curve fall: 10 samples of 100 W at 10 %,
			// 10 of 90 W at 20 %, model flat 100 W. Scale = 1900/2000 =
			// 0.95, prior 95 W. w1 = (1000+95)/11 = 99.545…, w2 =
			// (900+95)/11 = 90.454…: they fall, so they are pooled,
			// (1095+995)/22 = 95, and the whole curve is 95 W.
			name: "made non-decreasing", model: flat(100), lambda: 1,
			samples: append(repeat(10, 0.1, 100), repeat(10, 0.2, 90)...),
			want:    [Points]float64{95, 95, 95, 95, 95, 95, 95, 95, 95, 95, 95}, scale: 0.95,
		},
		{
			// One sample half-way between idle and 10 % (u = 0.05), 80 W,
			// model flat 100 W: scale 0.8, prior 80 W everywhere; the
			// sample agrees with the prior, so the fit is 80 W throughout.
			name: "between two points", model: flat(100), lambda: 1,
			samples: []sample{{0.05, 80}},
			want:    [Points]float64{80, 80, 80, 80, 80, 80, 80, 80, 80, 80, 80}, scale: 0.8,
		},
	}
	for _, c := range cases {
		var s Stats
		for _, x := range c.samples {
			s.Add(x.u, x.p, 0)
		}
		r, err := Fit(s, c.model, c.lambda, 1)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if math.Abs(r.Scale-c.scale) > 1e-9 {
			t.Errorf("%s: scale %v, want %v", c.name, r.Scale, c.scale)
		}
		for k := range Points {
			if math.Abs(r.Watts[k]-c.want[k]) > 1e-6 {
				t.Errorf("%s: point %d: %v W, want %v", c.name, k, r.Watts[k], c.want[k])
			}
		}
	}
}

func TestFitRMS(t *testing.T) {
	// Samples at idle 60 W and full load 300 W, model 50 and 250 at those
	// points: the model misses by 10 and 50 W, RMS sqrt((100+2500)/2) =
	// sqrt(1300) = 36.06 W; the fit goes through both: 0 W.
	var s Stats
	s.Add(0, 60, 0)
	s.Add(1, 300, 0)
	r, err := Fit(s, linear, 1e-6, 1)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.RMSModel-math.Sqrt(1300)) > 1e-6 || r.RMSFit > 1e-3 {
		t.Errorf("RMS model %v (want %v), fit %v (want 0)", r.RMSModel, math.Sqrt(1300), r.RMSFit)
	}
	if r.Support[0] != 1 || r.Support[10] != 1 || r.Support[5] != 0 {
		t.Errorf("support %v", r.Support)
	}
}

func TestFitErrors(t *testing.T) {
	var s Stats
	if _, err := Fit(s, linear, 1, 10); !errors.Is(err, ErrTooFew) {
		t.Errorf("no samples: %v", err)
	}
	s.Add(0.5, 100, 0)
	if _, err := Fit(s, linear[:5], 1, 1); err == nil {
		t.Error("a 5-point model was accepted")
	}
	if _, err := Fit(s, linear, -1, 1); err == nil {
		t.Error("a negative prior weight was accepted")
	}
}

func TestStatsHalfLife(t *testing.T) {
	var s Stats
	for range 10 {
		s.Add(0.3, 100, 4)
	}
	// Halved at 4 (→2), 2+1+1 = 4 again (→2), ...: N never passes 4.
	if s.N > 4 || s.N < 2 {
		t.Errorf("N = %v, want within [2, 4]", s.N)
	}
	if s.MinU != 0.3 || s.MaxU != 0.3 {
		t.Errorf("range %v–%v", s.MinU, s.MaxU)
	}
}
