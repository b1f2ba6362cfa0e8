//! A local Choreo platform, as `choreo up`, the chaos lab and the benchmark
//! run one: its databases, topics and schemas (`setup`), its processes
//! started in order and kept running (`up`, `supervisor`), its secrets
//! (`keys`), and a client of its edge (`client`).

pub mod client;
pub mod keys;
pub mod setup;
pub mod supervisor;
pub mod up;
