package server

import (
	"context"
	"errors"
	"fmt"

	pwr "github.com/ecrae/ecrae/power"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// PowerManager is what the PowerService needs of the power manager.
type PowerManager interface {
	Status(ctx context.Context, host string) ([]pwr.HostStatus, error)
	Off(ctx context.Context, host, by string) error
	On(ctx context.Context, host, by string) error
	History(host string, limit int) ([]pwr.Event, error)
	Policy() pwr.Policy
	Paused() bool
}

// PowerService serves ecrae.v1.PowerService.
type PowerService struct {
	ecraev1.UnimplementedPowerServiceServer
	m PowerManager
}

// NewPowerService wraps m.
func NewPowerService(m PowerManager) *PowerService { return &PowerService{m: m} }

// Register adds the service to g.
func (p *PowerService) Register(g *grpc.Server) { ecraev1.RegisterPowerServiceServer(g, p) }

// hostArg checks a host name argument.
func hostArg(h string, required bool) error {
	switch {
	case h == "" && required:
		return status.Error(codes.InvalidArgument, "host: must name a host")
	case len(h) > 255:
		return status.Errorf(codes.InvalidArgument, "host: %q… is %d bytes long, want at most 255", h[:100], len(h))
	}
	return nil
}

// powerError maps the manager's errors to gRPC codes.
func powerError(err error) error {
	switch {
	case errors.Is(err, pwr.ErrUnknownHost):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, pwr.ErrRefused):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, pwr.ErrFenced):
		// Not this replica's to do: the caller retries on the leader.
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	// A BMC, Ironic or Nova that failed: the message names host and endpoint.
	return status.Error(codes.Unavailable, err.Error())
}

func hostPower(s pwr.HostStatus) *ecraev1.HostPower {
	return &ecraev1.HostPower{Host: s.Host, Endpoint: s.Endpoint, State: string(s.State), OffByEcrae: s.OffByECRAE, Waking: s.Waking, Error: s.Error}
}

// GetPowerStatus asks the BMCs.
func (p *PowerService) GetPowerStatus(ctx context.Context, req *ecraev1.GetPowerStatusRequest) (*ecraev1.GetPowerStatusResponse, error) {
	if err := hostArg(req.GetHost(), false); err != nil {
		return nil, err
	}
	st, err := p.m.Status(ctx, req.GetHost())
	if err != nil {
		return nil, powerError(err)
	}
	out := &ecraev1.GetPowerStatusResponse{Policy: string(p.m.Policy()), Paused: p.m.Paused()}
	for _, s := range st {
		out.Hosts = append(out.Hosts, hostPower(s))
	}
	return out, nil
}

// PowerOff powers a host off, if every safety rule allows it.
func (p *PowerService) PowerOff(ctx context.Context, req *ecraev1.PowerOffRequest) (*ecraev1.PowerOffResponse, error) {
	if err := hostArg(req.GetHost(), true); err != nil {
		return nil, err
	}
	if err := p.m.Off(ctx, req.GetHost(), actionBy(ctx)); err != nil {
		return nil, powerError(err)
	}
	return &ecraev1.PowerOffResponse{Host: p.after(ctx, req.GetHost())}, nil
}

// PowerOn powers a host on.
func (p *PowerService) PowerOn(ctx context.Context, req *ecraev1.PowerOnRequest) (*ecraev1.PowerOnResponse, error) {
	if err := hostArg(req.GetHost(), true); err != nil {
		return nil, err
	}
	if err := p.m.On(ctx, req.GetHost(), actionBy(ctx)); err != nil {
		return nil, powerError(err)
	}
	return &ecraev1.PowerOnResponse{Host: p.after(ctx, req.GetHost())}, nil
}

// after reads the host's state once the action is done; a BMC that does
// not answer now is reported in the state, not as a failed action.
func (p *PowerService) after(ctx context.Context, host string) *ecraev1.HostPower {
	st, err := p.m.Status(ctx, host)
	if err != nil || len(st) == 0 {
		return &ecraev1.HostPower{Host: host, State: string(pwr.StateUnknown), Error: fmt.Sprint(err)}
	}
	return hostPower(st[0])
}

// ListPowerEvents returns the history.
func (p *PowerService) ListPowerEvents(_ context.Context, req *ecraev1.ListPowerEventsRequest) (*ecraev1.ListPowerEventsResponse, error) {
	if err := hostArg(req.GetHost(), false); err != nil {
		return nil, err
	}
	limit := int(req.GetLimit())
	switch {
	case limit < 0:
		return nil, status.Errorf(codes.InvalidArgument, "limit: %d is negative", limit)
	case limit == 0:
		limit = 100
	}
	evs, err := p.m.History(req.GetHost(), limit)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "power history: %v", err)
	}
	out := &ecraev1.ListPowerEventsResponse{Events: make([]*ecraev1.PowerEvent, 0, len(evs))}
	for _, e := range evs {
		pe := &ecraev1.PowerEvent{Seq: e.Seq, At: timestamppb.New(e.At), Host: e.Host, Endpoint: e.Endpoint, Action: string(e.Action), By: e.By, Detail: e.Detail}
		if e.Latency > 0 {
			pe.Latency = durationpb.New(e.Latency)
		}
		out.Events = append(out.Events, pe)
	}
	return out, nil
}
