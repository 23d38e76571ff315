//! Writes a synthetic Phase 2 `mongoexport` directory for measuring
//! `step migrate import`: N fresh proofs (one account each) submitted to the
//! Phase 2 stand-in, its collections written as mongoexport does.
//!
//! `cargo run -p step-migrate --example synthetic_export -- DIR N`, or
//! `-- DIR samples` for the tests' history (`phase2_history::sample_history`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use step_testkit::phase2::Phase2;
use step_testkit::phase2_history::write_export;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let what = args.next().expect("N or samples");
    if what == "samples" {
        let h = step_testkit::phase2_history::sample_history();
        write_export(&h.phase2, &dir);
        println!(
            "{} proofs accepted; export in {}",
            h.accepted.len(),
            dir.display()
        );
        return;
    }
    let n: usize = what.parse().expect("N is a number");
    let mut p = Phase2::new();
    let mut accepted = 0;
    for body in step_testkit::one_per_account("synthetic-export", n) {
        if p.submit(&body).status == 200 {
            accepted += 1;
        }
    }
    write_export(&p, &dir);
    println!(
        "{accepted} of {n} proofs accepted; export in {}",
        dir.display()
    );
}
