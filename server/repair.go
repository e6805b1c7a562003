package server

import (
	"github.com/ecrae/ecrae/optimizer"
	"github.com/ecrae/ecrae/planstore"
)

// storeRepair copies what a plan repairs into its stored form: the hosts
// it takes out of overload, those it cannot, and why.
func storeRepair(cl optimizer.Cluster, p *optimizer.Plan, sp *planstore.Plan) {
	for _, b := range p.Repaired {
		sp.Repaired = append(sp.Repaired, cl.Hosts[b].Name)
	}
	for _, b := range p.Overloaded {
		sp.Overloaded = append(sp.Overloaded, cl.Hosts[b].Name)
	}
	sp.InfeasibleReason = p.InfeasibleReason
}
