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
