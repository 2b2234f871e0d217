//! eBADGE bus simulators: HEH fleets, a VPP with activation campaigns, market actors, the demo
//! and the benchmarks ([`bench`]), both on a local broker made ready the same way
//! ([`local_bus`]); [`proxy`], the link they (and the fault-injection tests) run through; and the
//! conformance kit that checks a partner's client ([`conformance`]).

pub mod bench;
pub mod conformance;
pub mod demo;
pub mod fleet;
pub mod heh;
pub mod local_bus;
pub mod market;
pub mod proxy;
pub mod vpp;
