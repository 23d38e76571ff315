//! Checks of a load report (`step bench --json`'s last line, or
//! `Report::to_json`) shared by the load tests.

use serde_json::Value;

/// A count of the report; fails the test when it is missing.
pub fn count(j: &Value, k: &str) -> u64 {
    j[k].as_u64().unwrap_or_else(|| panic!("{k} in {j}"))
}

/// The counts add up: every request sent or dropped, every one sent
/// answered (accepted, rejected or an error), the rejections by code sum to
/// the rejections, and no more proofs final than accepted.
pub fn assert_consistent(j: &Value) {
    let n = |k: &str| count(j, k);
    assert_eq!(n("sent") + n("dropped_by_generator"), n("scheduled"), "{j}");
    assert_eq!(
        n("accepted") + n("rejected") + n("errors"),
        n("sent"),
        "{j}"
    );
    let by_code: u64 = j["rejected_by_code"]
        .as_object()
        .unwrap_or_else(|| panic!("rejected_by_code in {j}"))
        .values()
        .map(|v| v.as_u64().unwrap_or_else(|| panic!("a count in {j}")))
        .sum();
    assert_eq!(by_code, n("rejected"), "{j}");
    assert!(n("finalized") <= n("accepted"), "{j}");
}
