//! `step-e2e`: the fault harness of issue #17. Real `step node` validators,
//! each in its own network namespace with its own address, linked through a
//! userspace router that can cut, slow and drop; processes killed, paused,
//! restarted and clock-skewed; a load generator that remembers every 202; and
//! checks that every accepted proof is finalized, that no height has two
//! roots, and that the chain halts and resumes when the manifest says.
//!
//! `cargo test -p step-e2e` runs the short matrix (`e2e/manifests/*.toml`);
//! `step-e2e run MANIFEST` runs one scenario and prints its report.
//! Needs root, iproute2 and `/dev/net/tun`; `faketime` for clock skew.

pub mod flood;
pub mod hostile;
pub mod http;
pub mod load;
pub mod manifest;
pub mod net;
pub mod node;
pub mod prom;
pub mod scenario;

pub use manifest::Manifest;
pub use scenario::{run, Report};
