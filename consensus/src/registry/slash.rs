//! Slashing and rewards, deterministic from what blocks carry.
//!
//! * Double-signing (two conflicting signed votes or proposals of one
//!   height and round): 50 % of stake, jailed.
//! * Invalid attestation (an attestation over a provably invalid batch):
//!   30 % of each attester's stake. When the attesters of one invalid batch
//!   hold more than a third of the set's power (f + 1 or more of equal
//!   power), that is collusion: 100 % and banned.
//! * Offline: no commit signature for longer than `offline_window_ms` of
//!   block time (read from the commit certificates): 10 %, jailed.
//!
//! A slash takes the fraction of the bonded stake and of every unbonding
//! entry (unbonding does not escape a slash) and pays it to the genesis'
//! `slash_destination`. Each piece of evidence counts once (its id is kept);
//! an offline validator is jailed, so it is not counted again.
//!
//! Rewards are paid per height: `reward_per_proof_micro` × the height's
//! finalized proofs, split by stake among the validators that signed its
//! commit; the rounding remainder is carried to the next height.

use super::{Balances, Operator, Registry, Status};
use crate::context::PublicKey;

/// Why a validator is slashed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OffenceKind {
    DoubleSign,
    InvalidAttestation,
    Offline,
    Collusion,
}

impl OffenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OffenceKind::DoubleSign => "double_sign",
            OffenceKind::InvalidAttestation => "invalid_attestation",
            OffenceKind::Offline => "offline",
            OffenceKind::Collusion => "collusion",
        }
    }
}

/// Checked evidence, as a block carries it to execution. The signatures in
/// it were verified before (the votes by malachite's verifier, the
/// attestations by `attest`); `evidence_id` names the offence, not the
/// message pair, so two reports of one offence count once.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Offence {
    DoubleSign {
        validator: PublicKey,
        evidence_id: [u8; 32],
    },
    /// Every attester of one provably invalid batch.
    InvalidBatch {
        attesters: Vec<PublicKey>,
        evidence_id: [u8; 32],
    },
}

impl Offence {
    pub fn evidence_id(&self) -> &[u8; 32] {
        match self {
            Offence::DoubleSign { evidence_id, .. } | Offence::InvalidBatch { evidence_id, .. } => {
                evidence_id
            }
        }
    }
}

/// The id of a double-sign by `validator` at `height` and `round`.
pub fn double_sign_id(validator: &PublicKey, height: u64, round: u32) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"STEP-EVIDENCE-double-sign-v1\n");
    h.update(validator.0);
    h.update(height.to_be_bytes());
    h.update(round.to_be_bytes());
    h.finalize().into()
}

/// One validator slashed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SlashOutcome {
    pub operator: Operator,
    pub kind: OffenceKind,
    pub slashed_micro: u64,
    pub status: Status,
}

/// Why evidence had no effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlashError {
    #[error("evidence {} was already counted", hex::encode(.evidence_id))]
    AlreadyCounted { evidence_id: [u8; 32] },
    #[error("no validator of the current set has the key {}", hex::encode(.key.0))]
    UnknownKey { key: PublicKey },
    #[error("evidence names no attester")]
    NoAttesters,
}

impl SlashError {
    pub fn code(&self) -> &'static str {
        match self {
            SlashError::AlreadyCounted { .. } => "EVIDENCE_ALREADY_COUNTED",
            SlashError::UnknownKey { .. } => "EVIDENCE_UNKNOWN_VALIDATOR",
            SlashError::NoAttesters => "EVIDENCE_NO_ATTESTERS",
        }
    }
}

/// `amount × ppm / 10⁶`, rounded down.
fn part(amount: u64, ppm: u32) -> u64 {
    // ≤ amount, so it fits in u64.
    (u128::from(amount) * u128::from(ppm) / 1_000_000) as u64
}

impl Registry {
    /// Executes `offence` at block time `now_ms`.
    pub fn apply_offence(
        &mut self,
        offence: &Offence,
        now_ms: u64,
        balances: &mut impl Balances,
    ) -> Result<Vec<SlashOutcome>, SlashError> {
        let id = *offence.evidence_id();
        if self.evidence_seen.contains(&id) {
            return Err(SlashError::AlreadyCounted { evidence_id: id });
        }
        let set = self.current_set().clone();
        let operator = |key: &PublicKey| {
            set.operator_of(key)
                .ok_or(SlashError::UnknownKey { key: *key })
        };
        let out = match offence {
            Offence::DoubleSign { validator, .. } => {
                let op = operator(validator)?;
                vec![self.slash(&op, OffenceKind::DoubleSign, now_ms, balances)]
            }
            Offence::InvalidBatch { attesters, .. } => {
                let mut ops = attesters
                    .iter()
                    .map(operator)
                    .collect::<Result<Vec<_>, _>>()?;
                ops.sort();
                ops.dedup();
                if ops.is_empty() {
                    return Err(SlashError::NoAttesters);
                }
                let power: u64 = set
                    .set
                    .iter()
                    .filter(|v| ops.contains(&v.operator))
                    .map(|v| v.power)
                    .sum();
                let kind = if u128::from(power) * 3 > u128::from(set.total_power()) {
                    OffenceKind::Collusion
                } else {
                    OffenceKind::InvalidAttestation
                };
                ops.iter()
                    .map(|op| self.slash(op, kind, now_ms, balances))
                    .collect()
            }
        };
        self.evidence_seen.insert(id);
        Ok(out)
    }

    /// Takes `kind`'s fraction from `op` (a member of the current set) and
    /// sets its status.
    fn slash(
        &mut self,
        op: &Operator,
        kind: OffenceKind,
        now_ms: u64,
        balances: &mut impl Balances,
    ) -> SlashOutcome {
        let p = self.params;
        let ppm = match kind {
            OffenceKind::DoubleSign => p.slash.double_sign_ppm,
            OffenceKind::InvalidAttestation => p.slash.invalid_attestation_ppm,
            OffenceKind::Offline => p.slash.offline_ppm,
            OffenceKind::Collusion => p.slash.collusion_ppm,
        };
        let mut slashed: u64 = 0;
        let status = {
            let rec = self
                .validators
                .get_mut(op)
                .expect("a member of the set has a record: records are never removed");
            {
                let s = part(rec.stake_micro, ppm);
                rec.stake_micro -= s;
                slashed += s;
                for u in &mut rec.unbonding {
                    let s = part(u.amount_micro, ppm);
                    u.amount_micro -= s;
                    slashed += s;
                }
                rec.status = match (kind, rec.status) {
                    (OffenceKind::Collusion, _) => {
                        slashed += std::mem::take(&mut rec.rewards_micro);
                        Status::Banned
                    }
                    (_, Status::Banned) => Status::Banned,
                    (OffenceKind::DoubleSign | OffenceKind::Offline, _) => Status::Jailed {
                        until_ms: now_ms.saturating_add(p.jail_ms),
                    },
                    (OffenceKind::InvalidAttestation, s) => s,
                };
                rec.status
            }
        };
        let dest = p.slash_destination.0;
        balances.set_balance(dest, balances.balance(&dest).saturating_add(slashed));
        SlashOutcome {
            operator: *op,
            kind,
            slashed_micro: slashed,
            status,
        }
    }

    /// A decided height's commit: `signers` (hot keys of the current set)
    /// signed it at block time `now_ms`, and it finalized `proofs`. Pays
    /// the height's rewards, then slashes every active member of the set
    /// that has not signed for longer than the offline window.
    pub fn record_commit(
        &mut self,
        signers: &[PublicKey],
        proofs: u64,
        now_ms: u64,
        balances: &mut impl Balances,
    ) -> Vec<SlashOutcome> {
        let set = self.current_set().clone();
        let mut signed: Vec<Operator> = signers.iter().filter_map(|k| set.operator_of(k)).collect();
        signed.sort();
        signed.dedup();
        for op in &signed {
            self.last_signed_ms.insert(*op, now_ms);
        }
        self.pay_rewards(&signed, proofs);
        let window = self.params.offline_window_ms;
        let offline: Vec<Operator> = set
            .set
            .iter()
            .map(|v| v.operator)
            .filter(|op| self.get(op).is_some_and(|r| r.status == Status::Active))
            .filter(|op| {
                let last = self.last_signed_ms.get(op).copied().unwrap_or(0);
                now_ms.saturating_sub(last) > window
            })
            .collect();
        offline
            .iter()
            .map(|op| self.slash(op, OffenceKind::Offline, now_ms, balances))
            .collect()
    }

    /// Splits this height's rewards (and the carried remainder) by stake
    /// among `signed`.
    fn pay_rewards(&mut self, signed: &[Operator], proofs: u64) {
        // Saturating: 2^64 micro-STEP is far beyond any supply.
        let pool = proofs
            .saturating_mul(self.params.reward_per_proof_micro)
            .saturating_add(self.reward_carry_micro);
        let stakes: Vec<(Operator, u128)> = signed
            .iter()
            .filter_map(|op| self.get(op).map(|r| (*op, u128::from(r.stake_micro))))
            .collect();
        let total: u128 = stakes.iter().map(|(_, s)| s).sum();
        let mut paid: u64 = 0;
        for (op, stake) in &stakes {
            // No signer with stake: the whole pool is carried.
            let Some(share) = (u128::from(pool) * stake).checked_div(total) else {
                break;
            };
            // ≤ pool, so it fits.
            let share = share as u64;
            paid += share;
            let rec = self.validators.get_mut(op).expect("looked up above");
            rec.rewards_micro = rec.rewards_micro.saturating_add(share);
        }
        self.reward_carry_micro = pool - paid;
    }
}
