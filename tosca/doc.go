// Package tosca is ECRAE's TOSCA toolchain (seed §4.1–4.2): it reads a TOSCA
// Simple Profile service template whose hosting nodes are given by workload
// tag (ecrae.nodes.Compute), resolves every tag with one what-if placement
// into a template of normative types only, and turns that into a Heat (HOT)
// template. Errors name the file, the line and the path in the template.
package tosca
