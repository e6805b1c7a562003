// Package sim is ECRAE's trace-driven data-center simulator: it replays a
// day of PlanetLab CPU traces through a placement and consolidation policy
// (CloudSim 3.0.3's reference policies, stock Nova's spreading, or ECRAE's
// own optimizer code) and measures energy and SLA as CloudSim does. See
// README.md in this folder.
package sim
