package agent

import (
	"context"
	"errors"
)

// ErrPriming is returned by a source's first reading: it needs a second
// one to compute a rate (energy counters, CPU ticks).
var ErrPriming = errors.New("first reading: a second is needed for a rate")

// Source names, as --sources takes them and samples report them.
const (
	SourceRAPL    = "rapl"
	SourceIPMI    = "ipmi"
	SourceRedfish = "redfish"
	SourceProc    = "proc"
)

// WattsSource reads the power the node draws, in watts.
type WattsSource interface {
	Name() string
	Watts(ctx context.Context) (float64, error)
}
