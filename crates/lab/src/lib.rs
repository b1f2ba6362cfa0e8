//! The chaos lab and the benchmark: `choreo chaos` and `choreo bench`.
//! Each starts a platform of its own (`choreo_platform::up`), drives orders
//! through its edge, and judges what it sees: the suites by every order's
//! end and an audit of the databases, the benchmark against the machine's
//! own limits.

pub mod bench;
pub mod chaos;
