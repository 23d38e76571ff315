//! The per-proof results of the latest executed blocks, for a reader that
//! missed a decision. See [`ResultJournal`].

use super::ProofResult;

/// Proofs whose results [`ResultJournal`] keeps, at most (about 6 MiB).
pub const JOURNAL_PROOFS_MAX: usize = 1 << 16;

/// One proof's result, by its signature (the node's proof id is
/// SHA-256 of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalEntry {
    pub signature: [u8; 65],
    pub result: ProofResult,
}

/// One executed height in the [`ResultJournal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalBlock {
    pub height: u64,
    /// In block order; proofs without a decoded signature (never in a
    /// batch) are left out.
    pub entries: Vec<JournalEntry>,
}

/// The per-proof results of the latest executed blocks, the oldest
/// forgotten first once more than [`JOURNAL_PROOFS_MAX`] proofs are kept.
/// A reader that missed a `Decided` event (a lagging subscriber) settles
/// its proofs from here. A cache beside the state, not state: a rebuilt
/// state starts with an empty journal, and two states compare equal
/// whatever their journals hold.
#[derive(Debug, Clone)]
pub struct ResultJournal {
    blocks: std::collections::VecDeque<JournalBlock>,
    proofs: usize,
    max_proofs: usize,
}

impl Default for ResultJournal {
    fn default() -> Self {
        ResultJournal::with_capacity(JOURNAL_PROOFS_MAX)
    }
}

impl PartialEq for ResultJournal {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl ResultJournal {
    /// A journal of at most `max_proofs` proofs (0: none kept).
    pub fn with_capacity(max_proofs: usize) -> ResultJournal {
        ResultJournal {
            blocks: std::collections::VecDeque::new(),
            proofs: 0,
            max_proofs,
        }
    }

    pub(super) fn push(&mut self, block: JournalBlock) {
        if self.max_proofs == 0 {
            return;
        }
        self.proofs += block.entries.len();
        self.blocks.push_back(block);
        while self.proofs > self.max_proofs && self.blocks.len() > 1 {
            if let Some(old) = self.blocks.pop_front() {
                self.proofs -= old.entries.len();
            }
        }
    }

    /// The lowest height still kept.
    pub fn first_height(&self) -> Option<u64> {
        self.blocks.front().map(|b| b.height)
    }

    /// The kept blocks above `height`, in height order.
    pub fn after(&self, height: u64) -> impl Iterator<Item = &JournalBlock> {
        self.blocks.iter().filter(move |b| b.height > height)
    }
}
