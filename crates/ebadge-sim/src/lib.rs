//! eBADGE bus simulators: HEH fleets, a VPP with activation campaigns, market actors, the demo
//! and the benchmark drivers; [`proxy`], the link they (and the fault-injection tests) run through.

pub mod bench;
pub mod ceiling;
pub mod children;
pub mod conformance;
pub mod demo;
pub mod figures;
pub mod fleet;
pub mod footprint;
pub mod heh;
pub mod market;
pub mod measure;
pub mod proxy;
pub mod vpp;
