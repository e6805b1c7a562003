package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ecrae/ecrae/agent/container"
	"github.com/ecrae/ecrae/hostview"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/ecrae/ecrae/rebalance"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// maxNameBytes bounds a container or host name in a request.
const maxNameBytes = 255

// MigrateContainer moves one container on an operator's request (`ecrae
// migrate`): found in the live view, judged by the one rule set as a plan
// step is (optimizer.Cluster.JudgeMove), and sent through the executor's
// own mover (rebalance.Route, fenced by ha in cluster mode), so nothing
// moves that a plan could not move, and a deposed leader moves nothing.
// An agent that answers with a failure makes the call fail with Aborted;
// its reply rides in the status details (the CLI prints it).
func (r *Rebalancer) MigrateContainer(ctx context.Context, req *ecraev1.MigrateContainerRequest) (*ecraev1.MigrateContainerResponse, error) {
	for _, f := range []struct{ field, v string }{{"container", req.GetContainer()}, {"to", req.GetTo()}, {"from", req.GetFrom()}} {
		if len(f.v) > maxNameBytes {
			return nil, invalid(f.field, "longer than %d bytes: %q", maxNameBytes, clipRuleValue(f.v))
		}
	}
	if req.GetContainer() == "" {
		return nil, invalid("container", "empty: name the container (its name or uuid)")
	}
	if req.GetTo() == "" {
		return nil, invalid("to", "empty: name the destination host")
	}
	mode := req.GetMode()
	switch mode {
	case "":
		mode = container.ModeAuto
	case container.ModeAuto, container.ModePostcopy, container.ModePrecopy, container.ModeStopcopy:
	default:
		return nil, invalid("mode", "want auto, postcopy, precopy or stopcopy, got %q", clipRuleValue(mode))
	}
	mover, ok := r.cfg.Migrator.(rebalance.ContainerMover)
	if !ok {
		return nil, status.Error(codes.FailedPrecondition, rebalance.ErrNoContainerMover.Error())
	}
	lv, ok := r.srv.cfg.Live.(rebalance.LiveView)
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "%v: containers are found in the live view", ErrNoLiveView)
	}
	in, found := findContainer(lv, req.GetContainer())
	if !found {
		return nil, status.Errorf(codes.NotFound, "container %q: not in the live view (stopped, or its agent stopped reporting)", clipRuleValue(req.GetContainer()))
	}
	if f := req.GetFrom(); f != "" && f != in.Host {
		return nil, status.Errorf(codes.FailedPrecondition, "from: container %s runs on %s, not on %q", in.Name, in.Host, clipRuleValue(f))
	}
	if err := r.judgeMove(ctx, in, req.GetTo()); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.exec.StepTimeout())
	defer cancel()
	rep, err := mover.MigrateContainer(ctx, in.UUID, req.GetTo(), mode)
	switch {
	case errors.Is(err, rebalance.ErrNoContainerMover):
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return nil, status.Errorf(status.FromContextError(err).Code(), "migrate %s: %v (the agents may finish the move: see ecrae hosts --instances)", in.Name, err)
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "migrate %s: %v", in.Name, err)
	}
	out := migrateResponse(rep)
	if rep.Error != "" {
		st, derr := status.New(codes.Aborted, fmt.Sprintf("migrate %s: %s", in.Name, rep.Error)).WithDetails(out)
		if derr != nil {
			return nil, status.Errorf(codes.Aborted, "migrate %s: %s", in.Name, rep.Error)
		}
		return nil, st.Err()
	}
	r.log.Info("container migrated", "container", in.Name, "uuid", in.UUID, "from", rep.From, "to", rep.To, "mode", rep.Mode,
		"frozen_ms", rep.FrozenMS, "by", r.cfg.Identity(ctx))
	return out, nil
}

// findContainer finds a container by uuid, else by name.
func findContainer(lv rebalance.LiveView, name string) (hostview.Instance, bool) {
	var byName hostview.Instance
	found := false
	for _, in := range lv.Instances("") {
		if in.Kind != hostview.KindContainer || in.Host == "" || in.State == "deleted" {
			continue
		}
		if in.UUID == name {
			return in, true
		}
		if in.Name == name && !found {
			byName, found = in, true
		}
	}
	return byName, found
}

// judgeMove refuses a move a plan step could not make, naming the rule.
func (r *Rebalancer) judgeMove(ctx context.Context, in hostview.Instance, to string) error {
	c, err := r.srv.catalog(ctx)
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	cl, err := r.liveCluster(ctx, c)
	if err != nil {
		return err
	}
	i, j := -1, -1
	for k := range cl.Instances {
		if cl.Instances[k].ID == in.UUID {
			i = k
		}
	}
	for k := range cl.Hosts {
		if cl.Hosts[k].Name == to {
			j = k
		}
	}
	if i < 0 {
		return status.Errorf(codes.NotFound, "container %s: not in the live view's cluster", in.Name)
	}
	if j < 0 {
		return status.Errorf(codes.NotFound, "to: host %q is not in the live view", clipRuleValue(to))
	}
	if v := cl.JudgeMove(i, j); !v.Passed {
		return status.Errorf(codes.FailedPrecondition, "to: the rules refuse %s on %s: %s: %s", in.Name, to, v.Filter, v.Reason)
	}
	return nil
}

func migrateResponse(r container.MigrateReply) *ecraev1.MigrateContainerResponse {
	ms := func(x float64) *durationpb.Duration {
		return durationpb.New(time.Duration(x * float64(time.Millisecond)))
	}
	out := &ecraev1.MigrateContainerResponse{Container: r.Container, From: r.From, To: r.To, Mode: r.Mode, ModeNote: r.ModeNote,
		Total: ms(r.TotalMS), Frozen: ms(r.FrozenMS), PagesDone: ms(r.PagesDoneMS), RoundsNote: r.RoundsNote,
		BytesSent: r.BytesSent, Error: r.Error}
	for _, d := range r.Rounds {
		out.Rounds = append(out.Rounds, &ecraev1.MigrateRound{Frozen: durationpb.New(time.Duration(d.FrozenUS) * time.Microsecond),
			PagesScanned: d.PagesScanned, PagesSkipped: d.PagesSkipped, PagesWritten: d.PagesWritten})
	}
	return out
}
