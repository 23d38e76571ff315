//! Epochs: the active set, its powers and its proposer order change only at
//! an epoch boundary. An epoch ends at the end of the block whose proofs
//! bring the epoch's finalized-proof count to `epoch_length_proofs`; the
//! new set is the one of the next height (`h + 1`), which is what the app
//! hands malachite when it starts that height. A set change is also where
//! rotated hot keys take over, and where jailed, unbonding and banned
//! validators leave.
//!
//! The history keeps one record per set *change* (not per epoch), so that
//! a certificate of an old height is checked against the set of its own
//! epoch ([`Registry::set_at`]) and the history grows with changes only.

use borsh::{BorshDeserialize, BorshSerialize};

use super::{Operator, Registry, Status};
use crate::context::{PublicKey, Validator, ValidatorSet};

/// A validator of an epoch's set.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct ActiveValidator {
    pub operator: Operator,
    pub consensus_key: PublicKey,
    pub power: u64,
}

/// A set, and the first height and epoch it applies to.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct EpochRecord {
    pub number: u64,
    pub start_height: u64,
    /// Ordered by power (highest first), then operator.
    pub set: Vec<ActiveValidator>,
}

impl EpochRecord {
    /// The set as malachite takes it.
    pub fn validator_set(&self) -> ValidatorSet {
        ValidatorSet::new(
            self.set
                .iter()
                .map(|v| Validator::new(v.consensus_key, v.power))
                .collect(),
        )
    }

    /// Total voting power.
    pub fn total_power(&self) -> u64 {
        self.set.iter().map(|v| v.power).sum()
    }

    /// The operator whose hot key in this set is `key`.
    pub fn operator_of(&self, key: &PublicKey) -> Option<Operator> {
        self.set
            .iter()
            .find(|v| v.consensus_key == *key)
            .map(|v| v.operator)
    }
}

/// What closing a block did to the epoch.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum EpochStep {
    /// The epoch goes on.
    Within { proofs: u64 },
    /// Epoch `number` begins at `start_height`; `changed` when its set
    /// differs from the previous one's.
    Boundary {
        number: u64,
        start_height: u64,
        changed: bool,
    },
    /// The boundary was reached but no validator would remain: the current
    /// set stays (a chain with no power could never decide again).
    EmptySetKept { number: u64 },
}

impl Registry {
    /// The set of the current epoch.
    pub fn current_set(&self) -> &EpochRecord {
        // `Registry::genesis` pushes the first record; it is never removed.
        self.epochs.last().expect("the genesis set")
    }

    /// The epoch the next height belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch_number
    }

    /// The set that decides `height`: the latest change at or before it.
    pub fn set_at(&self, height: u64) -> Option<&EpochRecord> {
        let i = self.epochs.partition_point(|e| e.start_height <= height);
        i.checked_sub(1).map(|i| &self.epochs[i])
    }

    /// The set a boundary now would install: active validators with power,
    /// their rotated keys, highest power first, at most `max_validators`.
    pub fn next_set(&self) -> Vec<super::ActiveValidator> {
        let mut set: Vec<ActiveValidator> = self
            .validators
            .values()
            .filter(|v| v.status == Status::Active && v.power() > 0)
            .map(|v| ActiveValidator {
                operator: v.operator,
                consensus_key: v.next_consensus_key.unwrap_or(v.consensus_key),
                power: v.power(),
            })
            .collect();
        set.sort_by(|a, b| b.power.cmp(&a.power).then(a.operator.cmp(&b.operator)));
        set.truncate(self.params.max_validators as usize);
        set
    }

    /// Counts `proofs` finalized at `height` and, at a boundary, installs
    /// the next set for `height + 1`.
    pub fn close_block(&mut self, height: u64, proofs: u64) -> EpochStep {
        self.epoch_proofs = self.epoch_proofs.saturating_add(proofs);
        if self.epoch_proofs < self.params.epoch_length_proofs {
            return EpochStep::Within {
                proofs: self.epoch_proofs,
            };
        }
        self.epoch_proofs = 0;
        self.epoch_number += 1;
        let number = self.epoch_number;
        let set = self.next_set();
        if set.is_empty() {
            return EpochStep::EmptySetKept { number };
        }
        for v in self.validators.values_mut() {
            if let Some(k) = v.next_consensus_key.take() {
                v.consensus_key = k;
            }
        }
        let start_height = height + 1;
        let changed = self.current_set().set != set;
        if changed {
            self.epochs.push(EpochRecord {
                number,
                start_height,
                set,
            });
        }
        EpochStep::Boundary {
            number,
            start_height,
            changed,
        }
    }
}
