// Package console is the web console `ecrae serve` serves at / on its HTTP
// address: server-rendered pages over the service's own handlers (called
// in-process, each through the authorization and audit of the gRPC method
// it stands for), an SVG chart of fleet power drawn here, embedded assets,
// and a small script that follows an executing plan.
package console
