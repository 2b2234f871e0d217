//! eBADGE bus: simulated HEHs, VPPs and market actors and the benchmark drivers; they arrive with the simulators issue.
