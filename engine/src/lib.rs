//! STEP-PROOF-v1 verification engine. Pure: no I/O, no clocks; threads only in
//! [`pipeline`], which takes its clock as an argument.
//!
//! Data flow for one proof (see `docs/ARCHITECTURE.md`):
//! body bytes → [`proof::parse`] → [`Proof`] → accuracy / age → signature policy
//! → [`message::MessageBuf`] → [`message::eip191_digest`] → [`crypto::Backend::recover`]
//! → address compare → [`mesh::contains`] → [`heuristics::check_stateful`]
//! → [`reward::reward_micro`].

/// `impl Display for T` (or `Debug`) that writes the `&'static str` or
/// `&str` a method of `T` returns: `fmt_as_text!(Display for Code, as_str)`.
/// The one form of every "prints as its text" impl in the workspace.
#[macro_export]
macro_rules! fmt_as_text {
    ($fmt:ident for $t:ty, $text:ident) => {
        impl ::std::fmt::$fmt for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.$text())
            }
        }
    };
}

pub mod address;
pub mod bounded;
pub mod crypto;
pub mod error;
pub mod heuristics;
pub mod jsnum;
pub mod mesh;
pub mod message;
pub mod pipeline;
pub mod proof;
pub mod reward;
#[cfg(feature = "signing")]
pub mod signing;
pub mod triangle;
pub mod verify;

pub use address::Address;
pub use crypto::Backend;
pub use error::{Code, Reject};
pub use heuristics::{AgeWindow, Limits, MemoryState, ProofState};
pub use proof::Proof;
pub use triangle::TriangleId;
pub use verify::{Accepted, Checked, Verifier};
