//! Double-sign evidence as STEP stores it.
//!
//! Malachite hands the app the equivocations it saw while finalizing a
//! height (`AppMsg::Finalized { evidence }`): pairs of conflicting signed
//! votes and signed proposals, per validator. Each node keeps what it saw
//! itself; evidence is not part of the decided value (see
//! `docs/CONSENSUS_SPEC.md`, "Evidence"). The pairs carry their signatures,
//! so a later slashing transaction can be checked by anyone with
//! [`EvidenceRecord::verify`].

use borsh::{BorshDeserialize, BorshSerialize};
use malachitebft_core_consensus::MisbehaviorEvidence;
use malachitebft_core_types::{SignedProposal, SignedVote, Vote as _};

use crate::context::{StepContext, ValidatorAddress, ValidatorSet};
use crate::signing::{proposal_signature_ok, vote_signature_ok, ChainId};

/// Two conflicting signed votes of one validator.
pub type DoubleVote = (SignedVote<StepContext>, SignedVote<StepContext>);
/// Two conflicting signed proposals of one validator.
pub type DoubleProposal = (SignedProposal<StepContext>, SignedProposal<StepContext>);

/// Equivocations seen while finalizing one height.
#[derive(Debug, Clone, BorshSerialize, BorshDeserialize)]
pub struct EvidenceRecord {
    pub height: u64,
    pub votes: Vec<(ValidatorAddress, Vec<DoubleVote>)>,
    pub proposals: Vec<(ValidatorAddress, Vec<DoubleProposal>)>,
}

impl EvidenceRecord {
    pub fn from_malachite(height: u64, e: &MisbehaviorEvidence<StepContext>) -> Self {
        EvidenceRecord {
            height,
            votes: e
                .votes
                .iter()
                .map(|(a, pairs)| (*a, pairs.clone()))
                .collect(),
            proposals: e
                .proposals
                .iter()
                .map(|(a, pairs)| (*a, pairs.clone()))
                .collect(),
        }
    }

    /// Validators accused of double voting.
    pub fn vote_offenders(&self) -> Vec<ValidatorAddress> {
        self.votes.iter().map(|(a, _)| *a).collect()
    }

    /// True when every pair is two different votes of the same type, height
    /// and round, both signed for `chain` by the accused validator of
    /// `validators`.
    pub fn verify(&self, chain: &ChainId, validators: &ValidatorSet) -> bool {
        use malachitebft_core_types::ValidatorSet as _;
        let votes_ok = self.votes.iter().all(|(addr, pairs)| {
            let Some(v) = validators.get_by_address(addr) else {
                return false;
            };
            pairs.iter().all(|(a, b)| {
                a.message.validator_address() == addr
                    && b.message.validator_address() == addr
                    && a.message.height() == b.message.height()
                    && a.message.round() == b.message.round()
                    && a.message.vote_type() == b.message.vote_type()
                    && a.message.value() != b.message.value()
                    && vote_signature_ok(chain, &a.message, &a.signature, &v.public_key)
                    && vote_signature_ok(chain, &b.message, &b.signature, &v.public_key)
            })
        });
        let proposals_ok = self.proposals.iter().all(|(addr, pairs)| {
            let Some(v) = validators.get_by_address(addr) else {
                return false;
            };
            pairs.iter().all(|(a, b)| {
                a.message.height == b.message.height
                    && a.message.round == b.message.round
                    && a.message.value != b.message.value
                    && proposal_signature_ok(chain, &a.message, &a.signature, &v.public_key)
                    && proposal_signature_ok(chain, &b.message, &b.signature, &v.public_key)
            })
        });
        votes_ok && proposals_ok
    }
}
