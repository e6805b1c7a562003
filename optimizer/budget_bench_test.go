package optimizer

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// bigVBP is a generated three-dimensional instance of n items of sizes
// 50–400 in bins of 1000: about 4.4 items a bin.
func bigVBP(n int) *PackInstance {
	r := rand.New(rand.NewPCG(7, uint64(n)))
	inst := &PackInstance{Format: "vbp", Dims: 3, BinTypes: []PackBinType{{Capacity: []int64{1000, 1000, 1000}}}}
	for range n {
		inst.Items = append(inst.Items, []int64{50 + r.Int64N(351), 50 + r.Int64N(351), 50 + r.Int64N(351)})
		inst.Lines = append(inst.Lines, 0)
	}
	return inst
}

// BenchmarkPackBudget times Pack against its time limit on large generated
// instances: the reported limit-ratio is the time taken over the limit
// (≤ 1.1 is the target: every phase is charged to the budget).
func BenchmarkPackBudget(b *testing.B) {
	for _, n := range []int{30_000, 300_000} {
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			inst := bigVBP(n)
			limit := time.Second
			var worst float64
			for b.Loop() {
				start := time.Now()
				res, err := Pack(inst, PackOptions{Seed: 1, Budget: Budget{Now: time.Now, Deadline: start.Add(limit)}})
				took := time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if res.Bins < res.Bounds.Bins {
					b.Fatalf("%d bins under the lower bound %d", res.Bins, res.Bounds.Bins)
				}
				worst = max(worst, took.Seconds()/limit.Seconds())
			}
			b.ReportMetric(worst, "limit-ratio")
		})
	}
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
