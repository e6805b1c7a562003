// Command scalegen generates a cloud for `make bench-scale`: it writes the
// KB host entries of N compute hosts and publishes, through NATS JetStream
// as Nova's versioned notifications would arrive, one service.update per
// host and one instance.create.end per instance (spread round-robin, with
// 1-4 vCPU flavors so that about a third of the hosts' vCPUs are used).
// The payloads have the shape of the notifications captured from a real
// Nova (integration/fixtures/nova_notifications.json).
//
//	go run ./scripts/scalegen --nats nats://127.0.0.1:4222 --hosts 10000 --instances 100000 --kb hosts.yaml
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scalegen:", err)
		os.Exit(1)
	}
}

func run() error {
	url := flag.String("nats", "nats://127.0.0.1:4222", "NATS server")
	hosts := flag.Int("hosts", 10000, "compute hosts")
	instances := flag.Int("instances", 100000, "instances")
	kb := flag.String("kb", "", "write the hosts' KB entries (YAML) to this file and publish nothing")
	arch := flag.String("arch", "dell-r740-xeon-8280", "architecture of the default KB every host is")
	prefix := flag.String("subject-prefix", "nova", "as serve --subject-prefix")
	flag.Parse()
	if *hosts <= 0 || *instances < 0 {
		return fmt.Errorf("--hosts must be positive and --instances not negative")
	}
	name := func(i int) string { return fmt.Sprintf("scale-%05d", i) }
	if *kb != "" {
		f, err := os.Create(*kb)
		if err != nil {
			return err
		}
		fmt.Fprintln(f, "hosts:")
		for i := range *hosts {
			fmt.Fprintf(f, "  - {name: %s, architecture: %s}\n", name(i), *arch)
		}
		return f.Close()
	}
	nc, err := nats.Connect(*url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx := context.Background()
	start := time.Now()
	// Dated just before now: the service refuses notifications from its future.
	t0 := start.Add(-time.Minute).UTC()
	stamp := func(k int) string {
		return t0.Add(time.Duration(k) * time.Microsecond).Format("2006-01-02 15:04:05.000000")
	}
	seq := 0
	var pending []jetstream.PubAckFuture
	publish := func(eventType string, body map[string]any) error {
		seq++
		body["event_type"], body["message_id"], body["priority"], body["timestamp"] = eventType, fmt.Sprintf("scale-%d", seq), "INFO", stamp(seq)
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		f, err := js.PublishAsync(*prefix+".versioned_notifications.info."+eventType, b)
		if err != nil {
			return err
		}
		pending = append(pending, f)
		if len(pending) >= 4000 {
			return wait(ctx, js, &pending)
		}
		return nil
	}
	for i := range *hosts {
		h := name(i)
		if err := publish("service.update", map[string]any{"publisher_id": "nova-compute:" + h, "payload": obj("ServiceStatusPayload", "1.1", map[string]any{
			"binary": "nova-compute", "disabled": false, "disabled_reason": nil, "forced_down": false, "host": h,
			"topic": "compute", "uuid": fmt.Sprintf("00000000-0000-4000-8000-%012d", i), "version": 64})}); err != nil {
			return err
		}
	}
	for k := range *instances {
		h := name(k % *hosts)
		vcpus := 1 + k%4
		uuid := fmt.Sprintf("%08x-0000-4000-9000-%012x", k, k)
		flavor := obj("FlavorPayload", "1.4", map[string]any{"name": fmt.Sprintf("scale.%d", vcpus), "flavorid": fmt.Sprintf("scale-%d", vcpus),
			"vcpus": vcpus, "memory_mb": 2048 * vcpus, "root_gb": 10, "ephemeral_gb": 0, "swap": 0, "extra_specs": map[string]any{},
			"disabled": false, "is_public": true, "rxtx_factor": 1.0, "vcpu_weight": 0, "description": nil, "projects": nil})
		if err := publish("instance.create.end", map[string]any{"publisher_id": "nova-compute:" + h, "payload": obj("InstanceCreatePayload", "1.12", map[string]any{
			"uuid": uuid, "display_name": fmt.Sprintf("vm-%06d", k), "host": h, "node": h, "state": "active", "power_state": "running",
			"task_state": nil, "tenant_id": "scale", "user_id": "scale", "flavor": flavor, "availability_zone": "nova",
			"created_at": t0.Format(time.RFC3339), "launched_at": t0.Format(time.RFC3339), "updated_at": t0.Format(time.RFC3339)})}); err != nil {
			return err
		}
	}
	if err := wait(ctx, js, &pending); err != nil {
		return err
	}
	fmt.Printf("published %d notifications (%d hosts, %d instances) in %.1f s\n", seq, *hosts, *instances, time.Since(start).Seconds())
	return nil
}

func obj(name, version string, data map[string]any) map[string]any {
	return map[string]any{"nova_object.name": name, "nova_object.namespace": "nova", "nova_object.version": version, "nova_object.data": data}
}

// wait returns once every pending publication is acknowledged.
func wait(ctx context.Context, js jetstream.JetStream, pending *[]jetstream.PubAckFuture) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return fmt.Errorf("publishing: %w", ctx.Err())
	}
	for _, f := range *pending {
		select {
		case err := <-f.Err():
			return fmt.Errorf("publishing %s: %w", f.Msg().Subject, err)
		default:
		}
	}
	*pending = (*pending)[:0]
	return nil
}
