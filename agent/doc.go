// Package agent is the node agent behind `ecrae agent`: it reads a compute
// node's power (RAPL, IPMI DCMI, Redfish) and CPU utilisation (/proc/stat)
// and publishes one sample per interval on ecrae.metrics.<host>, in the
// schema package events decodes (events/README.md).
package agent
