//! eBADGE bus simulators: HEH fleets, a VPP with activation campaigns, market actors, the demo
//! and the benchmark drivers.

pub mod bench;
pub mod ceiling;
pub mod demo;
pub mod fleet;
pub mod heh;
pub mod market;
pub mod measure;
pub mod vpp;
