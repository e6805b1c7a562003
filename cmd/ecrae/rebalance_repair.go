package main

import (
	"fmt"
	"io"
	"strings"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

// printRepair prints which overloaded hosts a plan repairs, and which it
// cannot and why.
func printRepair(w io.Writer, p *ecraev1.Plan) {
	if len(p.GetRepairedHosts()) > 0 {
		fmt.Fprintf(w, "repaired (overloaded before, not after): %s\n", strings.Join(p.GetRepairedHosts(), ", "))
	}
	if len(p.GetOverloadedHosts()) > 0 {
		fmt.Fprintf(w, "still overloaded after the plan: %s (%s)\n", strings.Join(p.GetOverloadedHosts(), ", "), p.GetInfeasibleReason())
	}
	if r := p.GetRelieve(); r > 0 {
		fmt.Fprintf(w, "relieve %g: hosts busy past a ceiling but within %g %% of their cores kept their instances\n", r, 100*r)
	}
}
