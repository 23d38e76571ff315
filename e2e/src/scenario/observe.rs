//! What the recorders saw: each validator's heights and roots over time.

use super::*;

/// One observation of a validator's height (from `/events` or `/status`).
#[derive(Debug, Clone)]
pub(super) struct Obs {
    pub(super) node: usize,
    pub(super) height: u64,
    pub(super) root: String,
    pub(super) at: Instant,
}

pub(super) fn observations(rec: &crate::http::Record) -> Vec<Obs> {
    let mut v: Vec<Obs> = rec
        .blocks
        .iter()
        .map(|b| Obs {
            node: b.node,
            height: b.height,
            root: b.root.clone(),
            at: b.at,
        })
        .chain(rec.status.iter().map(|s| Obs {
            node: s.node,
            height: s.height,
            root: s.root.clone(),
            at: s.at,
        }))
        .filter(|o| o.height > 0)
        .collect();
    v.sort_by_key(|o| o.at);
    v
}

pub(super) fn max_height_by(obs: &[Obs], until: Instant, node: Option<usize>) -> u64 {
    obs.iter()
        .filter(|o| o.at <= until && node.is_none_or(|n| o.node == n))
        .map(|o| o.height)
        .max()
        .unwrap_or(0)
}

pub(super) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The greatest height ≥ `min` that every validator reported, with its root.
pub(super) fn common_height(obs: &[Obs], n: usize, min: u64) -> Option<(u64, String)> {
    let mut per: BTreeMap<u64, (BTreeSet<usize>, String)> = BTreeMap::new();
    for o in obs.iter().filter(|o| o.height >= min) {
        let e = per
            .entry(o.height)
            .or_insert_with(|| (BTreeSet::new(), o.root.clone()));
        e.0.insert(o.node);
    }
    per.into_iter()
        .rev()
        .find(|(_, (nodes, _))| nodes.len() == n)
        .map(|(h, (_, r))| (h, r))
}

/// `expect.readiness`: each window saw the readiness it names at least once
/// in the validator's `/status` polls.
pub(super) fn check_readiness(
    report: &mut Report,
    expects: &[crate::manifest::ReadyExpect],
    status: &[crate::http::StatusSeen],
    t0: Instant,
) {
    for r in expects {
        let windows = [(r.not_ready_within, false), (r.ready_within, true)];
        for (w, want) in windows {
            let Some([from, to]) = w else { continue };
            let seen: Vec<bool> = status
                .iter()
                .filter(|s| s.node == r.node)
                .filter(|s| {
                    let t = s.at.saturating_duration_since(t0).as_secs_f64();
                    (from..=to).contains(&t)
                })
                .map(|s| s.ready)
                .collect();
            let hits = seen.iter().filter(|&&x| x == want).count();
            let what = if want { "ready" } else { "not ready" };
            report.note(format!(
                "validator {} in {from}–{to} s: {hits} of {} /status polls {what}",
                r.node,
                seen.len()
            ));
            if hits == 0 {
                report.fail(format!(
                    "validator {} never reported {what} in {from}–{to} s ({} polls)",
                    r.node,
                    seen.len()
                ));
            }
        }
    }
}
