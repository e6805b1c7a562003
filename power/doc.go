// Package power switches compute hosts off and on: a Manager that refuses
// anything that could hurt an instance, a headroom policy over the live
// host view, a bounded history in bbolt, and backends for IPMI (RMCP+),
// Redfish (ComputerSystem.Reset) and Ironic (node power state).
package power
