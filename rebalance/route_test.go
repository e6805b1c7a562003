package rebalance

import (
	"context"
	"strings"
	"testing"

	"github.com/ecrae/ecrae/hostview"
)

// named is a Migrator that says which one it is: the test is about the
// dispatch, not the moves (proven in openstack/ and agent/container/).
type named string

func (n named) Locate(context.Context, string) (string, error) { return string(n), nil }
func (n named) LiveMigrate(context.Context, string, string) error {
	return &moved{string(n)}
}

type moved struct{ by string }

func (m *moved) Error() string { return "moved by " + m.by }

func TestRoute(t *testing.T) {
	kind := func(id string) string {
		if strings.HasPrefix(id, "c") {
			return hostview.KindContainer
		}
		return ""
	}
	r := Route{Nova: named("nova"), Agents: named("agents"), Kind: kind}
	for id, want := range map[string]string{"c1": "agents", "vm1": "nova"} {
		if got, _ := r.Locate(context.Background(), id); got != want {
			t.Errorf("Locate(%s) = %s, want %s", id, got, want)
		}
		if err := r.LiveMigrate(context.Background(), id, "h"); err == nil || err.Error() != "moved by "+want {
			t.Errorf("LiveMigrate(%s): %v, want moved by %s", id, err, want)
		}
	}
	noNova := Route{Agents: named("agents"), Kind: kind}
	if err := noNova.LiveMigrate(context.Background(), "vm1", "h"); err == nil || !strings.Contains(err.Error(), "no Nova") {
		t.Errorf("VM without Nova: %v", err)
	}
	noAgents := Route{Nova: named("nova"), Kind: kind}
	if _, err := noAgents.Locate(context.Background(), "c1"); err == nil || !strings.Contains(err.Error(), "no agent migrator") {
		t.Errorf("container without agents: %v", err)
	}
}

// settling is a Migrator that can wait for Nova (a Settler): Settle says
// so, Locate does not.
type settling string

func (s settling) Locate(context.Context, string) (string, error) { return "located", nil }
func (s settling) LiveMigrate(context.Context, string, string) error {
	return nil
}
func (s settling) Settle(context.Context, string) (string, error) { return string(s), nil }

// A takeover settles in-flight steps through the Route serve builds: the
// Nova side's Settle must be reached (the Route once hid it, so a step
// still migrating read as not moved and failed the plan); a Migrator
// without Settle is located.
func TestRouteSettle(t *testing.T) {
	kind := func(id string) string {
		if strings.HasPrefix(id, "c") {
			return hostview.KindContainer
		}
		return ""
	}
	r := Route{Nova: settling("settled by nova"), Agents: named("agents"), Kind: kind}
	for id, want := range map[string]string{"vm1": "settled by nova", "c1": "agents"} {
		got, err := Settle(context.Background(), r, id)
		if err != nil || got != want {
			t.Errorf("Settle(route, %s) = %q, %v; want %q", id, got, err, want)
		}
	}
	if _, err := (Route{Kind: kind}).Settle(context.Background(), "vm1"); err == nil || !strings.Contains(err.Error(), "no Nova") {
		t.Errorf("Settle of a VM without Nova: %v", err)
	}
}
