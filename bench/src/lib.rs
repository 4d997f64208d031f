//! The benchmark (`tasktrail-bench`) and the fault harness (`tasktrail-chaos`): tasktrail's
//! release binaries run as child processes against the real servers, driven over HTTP.

pub mod baselines;
pub mod load;
pub mod product;
pub mod report;
pub mod services;
