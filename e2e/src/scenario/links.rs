//! Dead links during a partition: with `expect.links_closed_before_heal`,
//! every validator must log `Disconnected from peer` (malachite's engine) for
//! each peer on the far side of a partition between the cut and the heal. A
//! connection still open at the heal is one TCP has stopped retransmitting on
//! (backed off) and that libp2p closes seconds after the heal; the redial,
//! not the heal, then decides when votes flow again (docs/RELIABILITY.md).

use crate::manifest::Kind;

/// A perturbation of the timeline: kind, UTC time applied, partition groups.
pub type Applied = (Kind, String, Option<Vec<Vec<usize>>>);
/// A cut: its UTC time, the heal's, and the groups.
pub type Cut = (String, String, Vec<Vec<usize>>);

/// Distinct peers validator's `log` reports disconnected (malachite's
/// consensus actor: `engine::consensus: Disconnected from peer peer_id=X`)
/// in (`cut_utc`, `heal_utc`).
pub fn closes_between(log: &str, cut_utc: &str, heal_utc: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.get(..cut_utc.len())
                .is_some_and(|t| t > cut_utc && t < heal_utc)
        })
        .filter(|l| l.contains("engine::consensus: Disconnected from peer"))
        .filter_map(|l| l.split("peer_id=").nth(1))
        .filter_map(|p| p.split_whitespace().next())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// (cut, heal) UTC pairs of the timeline with the groups of each cut.
pub fn cuts(times: &[Applied]) -> Vec<Cut> {
    let mut out = Vec::new();
    let mut open: Option<(String, Vec<Vec<usize>>)> = None;
    for (kind, utc, groups) in times {
        match kind {
            Kind::Partition => {
                if let Some(g) = groups {
                    open = Some((utc.clone(), g.clone()));
                }
            }
            Kind::Heal => {
                if let Some((cut, g)) = open.take() {
                    out.push((cut, utc.clone(), g));
                }
            }
            _ => {}
        }
    }
    out
}

/// How many peers of `node` a partition into `groups` cuts it off from.
pub fn peers_across(groups: &[Vec<usize>], node: usize, n: usize) -> usize {
    let own = groups.iter().find(|g| g.contains(&node));
    match own {
        Some(g) => n - g.len(),
        None => 0,
    }
}

/// Fails `report` for each validator that did not close its links across a
/// cut before the heal; `logs[i]` is validator `i`'s log.
pub(super) fn check(report: &mut super::Report, times: &[Applied], logs: &[String]) {
    let n = logs.len();
    for (cut, heal, groups) in cuts(times) {
        let mut closed = Vec::new();
        for (i, log) in logs.iter().enumerate() {
            let want = peers_across(&groups, i, n);
            let got = closes_between(log, &cut, &heal);
            closed.push(format!("{i}: {got}/{want}"));
            if got < want {
                report.fail(format!(
                    "validator {i} closed {got} of its {want} links across the cut of {cut} before the heal at {heal}"
                ));
            }
        }
        report.note(format!(
            "links closed during the cut of {cut} (peers disconnected/cut off): {}",
            closed.join(", ")
        ));
    }
}

/// [`check`] on the validators' log files.
pub(super) fn check_logs(
    report: &mut super::Report,
    times: &[Applied],
    cluster: &crate::node::Cluster,
) {
    let logs: Result<Vec<String>, _> = cluster
        .validators
        .iter()
        .map(|v| std::fs::read_to_string(&v.log))
        .collect();
    match logs {
        Ok(logs) => check(report, times, &logs),
        Err(e) => report.fail(format!("validator logs unreadable: {e}")),
    }
}

/// libp2p connection events in the logs after each heal / restart / resume
/// / pause: what reconnected, when.
pub(super) fn report_reconnects(
    report: &mut super::Report,
    heal_times: &[Applied],
    cluster: &crate::node::Cluster,
) {
    let n = cluster.validators.len();
    for (kind, utc, _) in heal_times
        .iter()
        .filter(|(k, _, _)| matches!(k, Kind::Heal | Kind::Restart | Kind::Resume | Kind::Pause))
    {
        let mut lines = Vec::new();
        for i in 0..n {
            let text = std::fs::read_to_string(&cluster.validators[i].log).unwrap_or_default();
            let ev: Vec<String> = text
                .lines()
                .filter(|l| l.get(..utc.len()).is_some_and(|t| t >= utc.as_str()))
                .filter(|l| l.contains("Connected to peer") || l.contains("Disconnected from peer"))
                .take(6)
                .map(|l| {
                    let t = l.get(11..23).unwrap_or("");
                    let what = if l.contains("Disconnected") {
                        "disc"
                    } else {
                        "conn"
                    };
                    let peer = l
                        .split("peer_id=")
                        .nth(1)
                        .and_then(|p| p.split_whitespace().next())
                        .unwrap_or("");
                    format!(
                        "{t} {what} …{}",
                        peer.get(peer.len().saturating_sub(6)..).unwrap_or("")
                    )
                })
                .collect();
            lines.push(format!("node {i}: [{}]", ev.join(", ")));
        }
        report.note(format!(
            "libp2p after {kind:?} at {utc}: {}",
            lines.join("; ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-12-01T22:05:29.000000Z  INFO consensus{h=4}: arc_malachitebft_engine::consensus: Disconnected from peer peer_id=A
2026-12-01T22:05:31.060000Z  INFO sync{h=4}: arc_malachitebft_engine::sync: Disconnected from peer peer_id=B
2026-12-01T22:05:31.061000Z  INFO consensus{h=4}: arc_malachitebft_engine::consensus: Disconnected from peer peer_id=B
2026-12-01T22:05:31.222000Z  INFO consensus{h=4}: arc_malachitebft_engine::consensus: Disconnected from peer peer_id=C
2026-12-01T22:05:32.222000Z  INFO consensus{h=4}: arc_malachitebft_engine::consensus: Disconnected from peer peer_id=C
2026-12-01T22:05:43.000000Z  INFO consensus{h=4}: arc_malachitebft_engine::consensus: Disconnected from peer peer_id=D
";

    #[test]
    fn only_closes_inside_the_cut_count() {
        assert_eq!(
            closes_between(LOG, "2026-12-01T22:05:30.000", "2026-12-01T22:05:41.788"),
            2
        );
        // C twice counts once; the sync actor's line is not counted.
        assert_eq!(
            closes_between(LOG, "2026-12-01T22:05:31.500", "2026-12-01T22:05:41.788"),
            1
        );
        assert_eq!(
            closes_between(LOG, "2026-12-01T22:05:33.000", "2026-12-01T22:05:41.788"),
            0
        );
    }

    #[test]
    fn a_cut_pairs_with_the_next_heal() {
        let t = |k, s: &str, g: Option<Vec<Vec<usize>>>| (k, s.to_owned(), g);
        let c = cuts(&[
            t(Kind::Kill, "a", None),
            t(Kind::Partition, "b", Some(vec![vec![0, 1], vec![2, 3]])),
            t(Kind::Heal, "c", None),
        ]);
        assert_eq!(
            c,
            vec![("b".into(), "c".into(), vec![vec![0, 1], vec![2, 3]])]
        );
        assert_eq!(peers_across(&c[0].2, 2, 4), 2);
        assert_eq!(peers_across(&[vec![0, 1, 2], vec![3]], 3, 4), 3);
        assert_eq!(peers_across(&[vec![0, 1, 2], vec![3]], 0, 4), 1);
    }
}
