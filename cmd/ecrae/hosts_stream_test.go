package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/ecrae/ecrae/server"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// TestHostsListsAHundredThousandInstances serves an in-process view of
// 100,000 instances over real gRPC on a loopback listener, with gRPC's
// own 4 MiB message limit on both sides (the whole list is about 15 MB):
// `ecrae hosts --instances` must list every one of them, once. One host
// holds 5,000 instances, more than one stream message takes, so its list
// continues across messages.
func TestHostsListsAHundredThousandInstances(t *testing.T) {
	const (
		hosts = 1000
		total = 100_000
		big   = 5000 // instances on compute-0000
	)
	ctx := context.Background()
	store, err := kbstore.Open(filepath.Join(t.TempDir(), "kb.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.SeedDefault(ctx); err != nil {
		t.Fatal(err)
	}
	view := hostview.New(hostview.Options{})
	at := time.Now().Add(-time.Minute)
	hostOf := func(i int) string {
		if i < big {
			return "compute-0000"
		}
		return fmt.Sprintf("compute-%04d", 1+i%(hosts-1))
	}
	for i := range total {
		h := hostOf(i)
		view.Apply(0, &hostview.Event{Kind: hostview.KindInstance, Type: "instance.create.end", Timestamp: at,
			Instance: hostview.InstanceChange{Op: hostview.OpUpsert, HasFlavor: true, Instance: hostview.Instance{
				UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Host: h, Node: h, State: "active", PowerState: "running",
				Flavor: hostview.Flavor{Name: "m1.small", VCPUs: 1, MemoryMB: 2048, RootGB: 20}}}})
	}
	srv, err := server.New(server.Config{Live: view, LiveSources: "test"}, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The premise: in one message the answer would not fit the limit.
	whole, err := srv.ListLiveHosts(ctx, &ecraev1.ListLiveHostsRequest{IncludeInstances: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := proto.Size(whole); n <= 4<<20 {
		t.Fatalf("the whole answer is %d bytes, within 4 MiB: the test proves nothing", n)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(append(server.MessageLimitOptions(4<<20), grpc.ForceServerCodecV2(server.Codec{}))...)
	srv.Register(g)
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	defer func() {
		g.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	var stdout, stderr bytes.Buffer
	err = runHosts(ctx, []string{"--instances", "--max-message", "4MiB", "--timeout", "2m", "--server", lis.Addr().String()}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("ecrae hosts --instances: %v\n%s", err, stderr.String())
	}
	// Instance lines read "  HOST  UUID  FLAVOR ...".
	seen := make(map[string]string, total)
	sc := bufio.NewScanner(&stdout)
	var summary string
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if strings.HasPrefix(line, "  ") && len(f) > 2 && strings.HasPrefix(f[1], "00000000-") {
			if prev, dup := seen[f[1]]; dup {
				t.Fatalf("instance %s listed twice (on %s and %s)", f[1], prev, f[0])
			}
			seen[f[1]] = f[0]
		}
		if strings.Contains(line, " hosts, ") {
			summary = line
		}
	}
	if len(seen) != total {
		t.Fatalf("listed %d instances, want %d", len(seen), total)
	}
	for i := range total {
		uuid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		if got, want := seen[uuid], hostOf(i); got != want {
			t.Fatalf("instance %s listed on %q, want %q", uuid, got, want)
		}
	}
	if want := fmt.Sprintf("%d hosts, %d instances;", hosts, total); !strings.HasPrefix(summary, want) {
		t.Fatalf("summary %q, want it to start with %q", summary, want)
	}
}
