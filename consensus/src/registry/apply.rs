//! Executing a validator transaction against the registry: the signature,
//! then the nonce, then the kind's own rules. A refused transaction changes
//! nothing (its nonce stays unused); an executed one uses its nonce.

use super::tx::{TxError, TxKind, ValidatorTx};
use super::{p2p_id_is_valid, Balances, Operator, Registry, Status, Unbonding, ValidatorRecord};
use crate::context::PublicKey;

/// What an executed transaction moved between the operator's account and
/// the registry.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TxOutcome {
    /// Taken from the operator's balance (bonded).
    pub debited_micro: u64,
    /// Paid to the operator's balance (released stake and rewards).
    pub credited_micro: u64,
}

impl Registry {
    /// Checks and executes `tx` at block time `now_ms` on `chain`.
    pub fn apply_tx(
        &mut self,
        chain: &[u8; 32],
        tx: &ValidatorTx,
        now_ms: u64,
        balances: &mut impl Balances,
    ) -> Result<TxOutcome, TxError> {
        tx.verify_signature(chain)?;
        self.check_nonce(&tx.operator, tx.nonce)?;
        let outcome = self.execute(&tx.operator, &tx.kind, now_ms, balances)?;
        self.nonces.insert(tx.operator, tx.nonce + 1);
        Ok(outcome)
    }

    /// `Replay` for a used nonce, `WrongNonce` for one that skips ahead.
    pub fn check_nonce(&self, operator: &Operator, got: u64) -> Result<(), TxError> {
        let expected = self.next_nonce(operator);
        match got.cmp(&expected) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => Err(TxError::Replay {
                operator: *operator,
                expected,
                got,
            }),
            std::cmp::Ordering::Greater => Err(TxError::WrongNonce {
                operator: *operator,
                expected,
                got,
            }),
        }
    }

    fn execute(
        &mut self,
        op: &Operator,
        kind: &TxKind,
        now_ms: u64,
        balances: &mut impl Balances,
    ) -> Result<TxOutcome, TxError> {
        match kind {
            TxKind::Register {
                consensus_key,
                p2p_id,
                stake_micro,
            } => self.register(op, consensus_key, p2p_id, *stake_micro, now_ms, balances),
            TxKind::AddStake { amount_micro } => self.add_stake(op, *amount_micro, balances),
            TxKind::Unbond { amount_micro } => self.unbond(op, *amount_micro, now_ms),
            TxKind::RotateKey { consensus_key } => self.rotate(op, consensus_key),
            TxKind::Withdraw => self.withdraw(op, now_ms, balances),
            TxKind::Unjail => self.unjail(op, now_ms),
        }
    }

    /// The record of `op`, refusing unknown and banned validators.
    fn record_mut(&mut self, op: &Operator) -> Result<&mut ValidatorRecord, TxError> {
        let rec = self
            .validators
            .get_mut(op)
            .ok_or(TxError::UnknownValidator { operator: *op })?;
        if rec.status == Status::Banned {
            return Err(TxError::Banned { operator: *op });
        }
        Ok(rec)
    }

    fn check_new_key(&self, key: &PublicKey) -> Result<(), TxError> {
        if ed25519_consensus::VerificationKey::try_from(key.0).is_err() {
            return Err(TxError::BadConsensusKey);
        }
        if self.key_in_use(key) {
            return Err(TxError::KeyInUse);
        }
        Ok(())
    }

    fn register(
        &mut self,
        op: &Operator,
        key: &PublicKey,
        p2p_id: &str,
        stake_micro: u64,
        now_ms: u64,
        balances: &mut impl Balances,
    ) -> Result<TxOutcome, TxError> {
        match self.validators.get(op).map(|v| v.status) {
            None | Some(Status::Exited) => {}
            Some(Status::Banned) => return Err(TxError::Banned { operator: *op }),
            Some(_) => return Err(TxError::AlreadyRegistered { operator: *op }),
        }
        self.check_new_key(key)?;
        if !p2p_id_is_valid(p2p_id) {
            return Err(TxError::BadP2pId {
                p2p_id: p2p_id.to_owned(),
            });
        }
        let min_micro = self.params.min_stake_micro;
        if stake_micro < min_micro {
            return Err(TxError::BelowMinimum {
                stake_micro,
                min_micro,
            });
        }
        let members = self
            .validators
            .values()
            .filter(|v| !matches!(v.status, Status::Exited | Status::Banned))
            .count();
        if members >= self.params.max_validators as usize {
            return Err(TxError::SetFull {
                max: self.params.max_validators,
            });
        }
        debit(balances, op, stake_micro)?;
        self.validators.insert(
            *op,
            ValidatorRecord {
                operator: *op,
                consensus_key: *key,
                next_consensus_key: None,
                p2p_id: p2p_id.to_owned(),
                stake_micro,
                unbonding: Vec::new(),
                status: Status::Active,
                rewards_micro: 0,
            },
        );
        self.last_signed_ms.insert(*op, now_ms);
        Ok(TxOutcome {
            debited_micro: stake_micro,
            credited_micro: 0,
        })
    }

    fn add_stake(
        &mut self,
        op: &Operator,
        amount_micro: u64,
        balances: &mut impl Balances,
    ) -> Result<TxOutcome, TxError> {
        if amount_micro == 0 {
            return Err(TxError::ZeroAmount);
        }
        let rec = self.record_mut(op)?;
        if !matches!(rec.status, Status::Active | Status::Jailed { .. }) {
            return Err(TxError::NotBonded {
                operator: *op,
                status: rec.status.as_str(),
            });
        }
        let stake = rec
            .stake_micro
            .checked_add(amount_micro)
            .ok_or(TxError::Overflow)?;
        debit(balances, op, amount_micro)?;
        self.record_mut(op)?.stake_micro = stake;
        Ok(TxOutcome {
            debited_micro: amount_micro,
            credited_micro: 0,
        })
    }

    fn unbond(
        &mut self,
        op: &Operator,
        amount_micro: u64,
        now_ms: u64,
    ) -> Result<TxOutcome, TxError> {
        if amount_micro == 0 {
            return Err(TxError::ZeroAmount);
        }
        let (min_micro, unbonding_ms) = (self.params.min_stake_micro, self.params.unbonding_ms);
        let rec = self.record_mut(op)?;
        if !matches!(rec.status, Status::Active | Status::Jailed { .. }) {
            return Err(TxError::NotBonded {
                operator: *op,
                status: rec.status.as_str(),
            });
        }
        let remaining =
            rec.stake_micro
                .checked_sub(amount_micro)
                .ok_or(TxError::UnbondMoreThanBonded {
                    bonded_micro: rec.stake_micro,
                    asked_micro: amount_micro,
                })?;
        if remaining > 0 && remaining < min_micro {
            return Err(TxError::BelowMinimum {
                stake_micro: remaining,
                min_micro,
            });
        }
        rec.stake_micro = remaining;
        rec.unbonding.push(Unbonding {
            amount_micro,
            release_ms: now_ms.saturating_add(unbonding_ms),
        });
        if remaining == 0 {
            rec.status = Status::Unbonding;
        }
        Ok(TxOutcome::default())
    }

    fn rotate(&mut self, op: &Operator, key: &PublicKey) -> Result<TxOutcome, TxError> {
        self.check_new_key(key)?;
        let rec = self.record_mut(op)?;
        if matches!(rec.status, Status::Exited | Status::Unbonding) {
            return Err(TxError::NotBonded {
                operator: *op,
                status: rec.status.as_str(),
            });
        }
        rec.next_consensus_key = Some(*key);
        Ok(TxOutcome::default())
    }

    fn withdraw(
        &mut self,
        op: &Operator,
        now_ms: u64,
        balances: &mut impl Balances,
    ) -> Result<TxOutcome, TxError> {
        let rec = self
            .validators
            .get_mut(op)
            .ok_or(TxError::UnknownValidator { operator: *op })?;
        let mut released: u64 = 0;
        for u in rec.unbonding.iter().filter(|u| u.release_ms <= now_ms) {
            released = released
                .checked_add(u.amount_micro)
                .ok_or(TxError::Overflow)?;
        }
        let total = released
            .checked_add(rec.rewards_micro)
            .ok_or(TxError::Overflow)?;
        if total == 0 {
            return Err(match rec.unbonding.iter().map(|u| u.release_ms).min() {
                Some(release_ms) => TxError::StillUnbonding {
                    operator: *op,
                    release_ms,
                    now_ms,
                },
                None => TxError::NothingToWithdraw { operator: *op },
            });
        }
        let balance = balances
            .balance(&op.0)
            .checked_add(total)
            .ok_or(TxError::Overflow)?;
        balances.set_balance(op.0, balance);
        rec.unbonding.retain(|u| u.release_ms > now_ms);
        rec.rewards_micro = 0;
        if rec.status == Status::Unbonding && rec.unbonding.is_empty() && rec.stake_micro == 0 {
            rec.status = Status::Exited;
            self.last_signed_ms.remove(op);
        }
        Ok(TxOutcome {
            debited_micro: 0,
            credited_micro: total,
        })
    }

    fn unjail(&mut self, op: &Operator, now_ms: u64) -> Result<TxOutcome, TxError> {
        let min_micro = self.params.min_stake_micro;
        let rec = self.record_mut(op)?;
        let Status::Jailed { until_ms } = rec.status else {
            return Err(TxError::NotJailed { operator: *op });
        };
        if now_ms < until_ms {
            return Err(TxError::StillJailed {
                operator: *op,
                until_ms,
                now_ms,
            });
        }
        if rec.stake_micro < min_micro {
            return Err(TxError::BelowMinimum {
                stake_micro: rec.stake_micro,
                min_micro,
            });
        }
        rec.status = Status::Active;
        self.last_signed_ms.insert(*op, now_ms);
        Ok(TxOutcome::default())
    }
}

/// Takes `amount` from `op`'s balance, or refuses.
fn debit(balances: &mut impl Balances, op: &Operator, amount: u64) -> Result<(), TxError> {
    let balance_micro = balances.balance(&op.0);
    let left = balance_micro
        .checked_sub(amount)
        .ok_or(TxError::InsufficientBalance {
            balance_micro,
            amount_micro: amount,
        })?;
    balances.set_balance(op.0, left);
    Ok(())
}
