//! Phase 2 → Phase 3: reads Phase 2's MongoDB collections (`accounts`,
//! `triangles`, `triangle_events`) and writes a Phase 3 initial state
//! ([`step_consensus::InitialStateFile`]), a summary and the refused records.
//! `docs/MIGRATION_GUIDE.md` is the operator's side.
//!
//! * [`import`]: the pure core. Documents in (as `bson::Document`s, in any
//!   order within a collection), an [`Outcome`] out: the state, the
//!   [`Report`], every [`Refusal`] with its reason. No I/O.
//! * [`export`]: reads a `mongoexport` directory (JSON lines or a JSON
//!   array, Extended JSON v2 relaxed or canonical).
//! * [`live`]: reads a live database with the `mongodb` driver.
//! * [`run`]: the command: read, import, check, write.

pub mod export;
pub mod import;
pub mod live;
pub mod report;
pub mod run;

pub use import::{Collection, Importer, Outcome, Refusal, Source};
pub use report::{CollectionCounts, Merge, Report};
pub use run::{run, Input, RunError, RunOptions, Summary};
