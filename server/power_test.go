package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ecrae/ecrae/kbstore"
	pwr "github.com/ecrae/ecrae/power"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestFilterHostsWithoutRoomWakesAHost: a pass that passes no host calls
// NoRoom (the power manager wakes a host for Nova's retry); a pass that
// passes one does not.
func TestFilterHostsWithoutRoomWakesAHost(t *testing.T) {
	store, err := kbstore.Open(filepath.Join(t.TempDir(), "kb.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	kb, err := kbstore.ParseYAML("testKB", []byte(testKB))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Import(context.Background(), kb, true); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	srv, err := New(Config{NoRoom: func() { calls.Add(1) }}, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// 10 of 10 vCPUs used: no room for one more.
	full := []*ecraev1.HostState{novaHost("full-1", "x86_64", 10, 10), novaHost("full-2", "x86_64", 10, 10)}
	for _, passedOnly := range []bool{false, true} {
		if _, err := srv.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: full, PassedOnly: passedOnly}); err != nil {
			t.Fatal(err)
		}
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("NoRoom called %d times after two passes without room, want 2", got)
	}
	room := append(full, novaHost("free", "x86_64", 0, 0))
	if _, err := srv.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: room}); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("NoRoom called after a pass with room (%d calls)", got)
	}
}

// errManager answers every call with one error.
type errManager struct{ err error }

func (e errManager) Status(context.Context, string) ([]pwr.HostStatus, error) { return nil, e.err }
func (e errManager) Off(context.Context, string, string) error                { return e.err }
func (e errManager) On(context.Context, string, string) error                 { return e.err }
func (e errManager) History(string, int) ([]pwr.Event, error)                 { return nil, e.err }
func (e errManager) Policy() pwr.Policy                                       { return pwr.PolicyAdvise }
func (e errManager) Paused() bool                                             { return false }

func TestPowerServiceCodes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("host c1: %w in the KB", pwr.ErrUnknownHost), codes.NotFound},
		{fmt.Errorf("%w: host c1 holds 2 instance(s)", pwr.ErrRefused), codes.FailedPrecondition},
		{errors.New("host c1 (ipmi://10.0.0.5:623): power off: IPMI session: timeout"), codes.Unavailable},
	} {
		p := NewPowerService(errManager{tc.err})
		_, err := p.PowerOff(ctx, &ecraev1.PowerOffRequest{Host: "c1"})
		if status.Code(err) != tc.want || !strings.Contains(err.Error(), "c1") {
			t.Errorf("PowerOff with %v: %v, want %v", tc.err, err, tc.want)
		}
	}
	p := NewPowerService(errManager{})
	if _, err := p.PowerOn(ctx, &ecraev1.PowerOnRequest{}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "host:") {
		t.Errorf("PowerOn without a host: %v", err)
	}
	long := strings.Repeat("x", 300)
	_, err := p.GetPowerStatus(ctx, &ecraev1.GetPowerStatusRequest{Host: long})
	if status.Code(err) != codes.InvalidArgument || strings.Contains(err.Error(), long[:101]) {
		t.Errorf("a 300-byte host: %v (must quote at most 100 bytes)", err)
	}
	if _, err := p.ListPowerEvents(ctx, &ecraev1.ListPowerEventsRequest{Limit: -1}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "limit") {
		t.Errorf("negative limit: %v", err)
	}
}
