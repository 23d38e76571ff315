//! Byzantine validators (`manifest.byzantine`, started with
//! `step node --byzantine KIND`) and what the honest ones must show of them:
//! evidence (`GET /evidence`), invalid batches refused and their sender
//! muted (logs), and, in every run, nothing finalized that no client sent.

use super::Report;
use crate::load::Sent;
use crate::manifest::{ByzantineExpect, ByzantineNode};
use crate::node::Cluster;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Instant;

/// What an honest validator logs for each invalid gossiped batch, and when
/// it mutes the publisher (`consensus/src/app/machine.rs`).
pub const INVALID_BATCH_LOG: &str = "peer gossiped an invalid batch; dropped";
pub const MUTED_LOG: &str = "peer's gossip muted after repeated invalid batches";

pub(super) fn configure(cluster: &mut Cluster, byz: &[ByzantineNode]) -> anyhow::Result<()> {
    for b in byz {
        anyhow::ensure!(
            matches!(
                b.kind.as_str(),
                "equivocate" | "bad-signatures" | "gps-spoof"
            ),
            "byzantine kind {:?}: not equivocate, bad-signatures or gps-spoof",
            b.kind
        );
        let v = cluster
            .validators
            .get_mut(b.node)
            .ok_or_else(|| anyhow::anyhow!("byzantine node {} does not exist", b.node))?;
        v.byzantine = Some(b.kind.clone());
    }
    Ok(())
}

/// The proof id (`SHA-256(signature)`, hex) of load proof `k` of `seed`.
pub fn load_proof_id(seed: &str, k: u64) -> Option<String> {
    let body = crate::load::proof(seed, k);
    let p = step_engine::proof::parse(&body).ok()?;
    let sig = p.signature.ok()?;
    let d: [u8; 32] = Sha256::digest(sig).into();
    Some(d.iter().map(|b| format!("{b:02x}")).collect())
}

/// Fails `report` if a finalized block holds a proof the load never sent
/// (a forged or spoofed one: nothing else makes proofs in a run).
pub(super) fn check_foreign(
    report: &mut Report,
    finalized: &HashMap<String, Instant>,
    sent: &[Sent],
    seed: &str,
) {
    let ours: HashSet<String> = sent
        .iter()
        .filter_map(|s| load_proof_id(seed, s.k))
        .collect();
    let foreign: Vec<&String> = finalized.keys().filter(|id| !ours.contains(*id)).collect();
    if !foreign.is_empty() {
        report.fail(format!(
            "{} finalized proofs no client sent (forged or spoofed), e.g. {:?}",
            foreign.len(),
            foreign.iter().take(3).collect::<Vec<_>>()
        ));
    }
}

/// Log lines of validator `i` that contain `needle`.
fn count_in_log(cluster: &Cluster, i: usize, needle: &str) -> Result<usize, String> {
    std::fs::read_to_string(&cluster.validators[i].log)
        .map(|t| t.lines().filter(|l| l.contains(needle)).count())
        .map_err(|e| format!("validator {i}'s log: {e}"))
}

/// Whether `GET /evidence` on `addr` names `offender` (40 hex) in a double-vote record.
fn evidence_names(addr: SocketAddr, offender: &str) -> Result<(usize, bool), String> {
    let r = crate::http::get(addr, "/evidence").map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("status {}", r.status));
    }
    let v = r.json().ok_or("not JSON")?;
    let records = v["evidence"].as_array().ok_or("no `evidence` array")?;
    let named = records.iter().any(|rec| {
        rec["doubleVotes"].as_array().is_some_and(|dv| {
            dv.iter().any(|d| {
                d["validator"]
                    .as_str()
                    .is_some_and(|a| a.eq_ignore_ascii_case(offender.trim_start_matches("0x")))
            })
        })
    });
    Ok((records.len(), named))
}

/// Resident set size of process `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS for pid {pid}"))
}

pub(super) fn check(
    report: &mut Report,
    expect: &[ByzantineExpect],
    cluster: &Cluster,
    addrs: &[SocketAddr],
) {
    // Memory at the end of every run (a flood must not grow it unbounded).
    let rss: Vec<String> = cluster
        .validators
        .iter()
        .map(|v| match &v.child {
            Some(c) => match rss_kib(c.id()) {
                Ok(k) => format!("{}: {} MiB", v.index, k / 1024),
                Err(e) => format!("{}: ? ({e})", v.index),
            },
            None => format!("{}: not running", v.index),
        })
        .collect();
    report.note(format!("validators' RSS at the end: {}", rss.join(", ")));
    for e in expect {
        let offender = cluster.validators[e.node].address.clone();
        for &i in &e.evidence_on {
            match evidence_names(addrs[i], &offender) {
                Ok((n, true)) => report.note(format!(
                    "validator {i}: GET /evidence has {n} record(s), naming validator {}",
                    e.node
                )),
                Ok((n, false)) => report.fail(format!(
                    "validator {i}: GET /evidence has {n} record(s), none naming validator {} ({offender})",
                    e.node
                )),
                Err(err) => report.fail(format!("validator {i}: GET /evidence: {err}")),
            }
        }
        for &i in &e.muted_on {
            match (
                count_in_log(cluster, i, INVALID_BATCH_LOG),
                count_in_log(cluster, i, MUTED_LOG),
            ) {
                (Ok(invalid), Ok(muted)) => {
                    report.note(format!(
                        "validator {i}: {invalid} invalid batch(es) dropped, {muted} mute(s)"
                    ));
                    if invalid == 0 || muted == 0 {
                        report.fail(format!(
                            "validator {i} did not refuse and mute validator {}'s batches ({invalid} dropped, {muted} mutes)",
                            e.node
                        ));
                    }
                }
                (Err(err), _) | (_, Err(err)) => report.fail(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_rss_is_read() {
        let k = rss_kib(std::process::id()).unwrap();
        assert!(k > 0);
        assert!(rss_kib(u32::MAX).is_err());
    }

    #[test]
    fn load_proof_ids_are_distinct_hex() {
        let a = load_proof_id("s", 0).unwrap();
        let b = load_proof_id("s", 1).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
