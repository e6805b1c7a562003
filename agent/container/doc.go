// Package container lists a node's containers (LXC or Podman) and
// live-migrates them between node agents with CRIU (the seed's chapter 6):
// control messages over NATS request/reply on per-host subjects, images and
// pages over a direct TCP connection between the two agents.
package container
