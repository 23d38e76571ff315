//! Misbehaviour evidence as the node reports it: the consensus app stores
//! each record (`step_consensus::evidence`) and hands it on; the ledger keeps
//! the last [`EVIDENCE_KEPT`] in memory for `GET /evidence` and counts them
//! (`step_evidence`).

use super::{EvidenceView, EVIDENCE_KEPT};
use std::collections::VecDeque;
use step_consensus::evidence::EvidenceRecord;

/// The view of one record: offenders and how many pairs each signed.
pub(super) fn view(e: &EvidenceRecord) -> EvidenceView {
    EvidenceView {
        height: e.height,
        double_votes: e.votes.iter().map(|(a, p)| (a.0, p.len())).collect(),
        double_proposals: e.proposals.iter().map(|(a, p)| (a.0, p.len())).collect(),
    }
}

/// Counts `e` and keeps its view.
pub(super) fn record(
    metrics: &crate::metrics::Metrics,
    list: &std::sync::Mutex<VecDeque<EvidenceView>>,
    e: &EvidenceRecord,
) {
    metrics.evidence.inc();
    keep(&mut super::intake::lock(list), view(e));
}

/// Appends `v`, dropping the oldest beyond [`EVIDENCE_KEPT`].
pub(super) fn keep(list: &mut VecDeque<EvidenceView>, v: EvidenceView) {
    list.push_back(v);
    while list.len() > EVIDENCE_KEPT {
        list.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_records() {
        let mut list = VecDeque::new();
        for h in 0..(EVIDENCE_KEPT as u64 + 5) {
            keep(
                &mut list,
                EvidenceView {
                    height: h,
                    double_votes: vec![([1; 20], 1)],
                    double_proposals: Vec::new(),
                },
            );
        }
        assert_eq!(list.len(), EVIDENCE_KEPT);
        assert_eq!(list.front().map(|v| v.height), Some(5));
        assert_eq!(
            list.back().map(|v| v.height),
            Some(EVIDENCE_KEPT as u64 + 4)
        );
    }
}
