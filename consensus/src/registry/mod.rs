//! The validator registry as chain state (issue 15): who validates, with
//! what stake and power, in which status, with what accrued rewards; changed
//! only by decided blocks. Pure and deterministic: no clock (block time is
//! passed in), no I/O; every refusal is a named [`TxError`].
//!
//! * [`tx`]: validator transactions, their signed text (EIP-191, signed by
//!   the operator's Ethereum "cold" key) and signature recovery.
//! * [`apply`]: executing a verified transaction against the registry.
//! * [`epoch`]: the active set, changed only at epoch boundaries, and the
//!   history that checks certificates of old heights against their epoch.
//! * [`slash`]: offences (double-sign, invalid attestation, offline,
//!   collusion), each counted once, and the per-height rewards.
//! * [`wire`]: the JSON form of a signed transaction.
//!
//! Amounts are micro-STEP (`u64`, as balances are); power is whole STEP of
//! stake. Balances are the chain's accounts, reached through [`Balances`].

pub mod apply;
pub mod epoch;
pub mod slash;
pub mod tx;
pub mod wire;

use borsh::{BorshDeserialize, BorshSerialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

pub use apply::TxOutcome;
pub use epoch::{ActiveValidator, EpochRecord, EpochStep};
pub use slash::{Offence, OffenceKind, SlashOutcome};
pub use tx::{TxError, TxKind, ValidatorTx};

use crate::context::PublicKey;

/// Micro-STEP per STEP.
pub const MICRO: u64 = 1_000_000;
/// Longest P2P id (a libp2p peer id in base58 is 52 characters for ed25519).
pub const P2P_ID_MAX_LEN: usize = 64;

/// An operator: the Ethereum address of the validator's cold key, which
/// signs its transactions and receives its withdrawals.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize,
)]
pub struct Operator(pub [u8; 20]);

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

/// Where a validator stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Status {
    /// Bonded; in the set from the next epoch boundary (or now, at genesis).
    Active,
    /// Slashed for double-signing or being offline: out of the set from the
    /// next epoch; `unjail` after `jailed_until_ms` brings it back.
    Jailed { until_ms: u64 },
    /// All stake unbonding: out of the set from the next epoch.
    Unbonding,
    /// Stake and rewards withdrawn; the record stays (its nonce too).
    Exited,
    /// Colluded: stake gone, never comes back.
    Banned,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Jailed { .. } => "jailed",
            Status::Unbonding => "unbonding",
            Status::Exited => "exited",
            Status::Banned => "banned",
        }
    }
}

/// Stake on its way out: released to the operator at `release_ms`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Unbonding {
    pub amount_micro: u64,
    pub release_ms: u64,
}

/// One validator of the registry.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct ValidatorRecord {
    pub operator: Operator,
    /// The hot key: signs votes and proposals, lives on the node.
    pub consensus_key: PublicKey,
    /// A rotated hot key, in the set from the next epoch.
    pub next_consensus_key: Option<PublicKey>,
    /// The node's libp2p peer id (base58).
    pub p2p_id: String,
    pub stake_micro: u64,
    pub unbonding: Vec<Unbonding>,
    pub status: Status,
    pub rewards_micro: u64,
}

impl ValidatorRecord {
    /// Voting power: whole STEP of stake (0 unless active).
    pub fn power(&self) -> u64 {
        match self.status {
            Status::Active => self.stake_micro / MICRO,
            _ => 0,
        }
    }
}

/// Slash fractions in parts per million of stake (`[registry.slash]` of
/// the genesis).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(deny_unknown_fields, default)]
pub struct SlashFractions {
    pub double_sign_ppm: u32,
    pub invalid_attestation_ppm: u32,
    pub offline_ppm: u32,
    pub collusion_ppm: u32,
}

impl Default for SlashFractions {
    /// The plan's 50 / 30 / 10 / 100 %.
    fn default() -> Self {
        SlashFractions {
            double_sign_ppm: 500_000,
            invalid_attestation_ppm: 300_000,
            offline_ppm: 100_000,
            collusion_ppm: 1_000_000,
        }
    }
}

/// The registry's genesis parameters (`[params.registry]` of the genesis).
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct RegistryParams {
    pub min_stake_micro: u64,
    pub unbonding_ms: u64,
    /// Finalized proofs per epoch.
    pub epoch_length_proofs: u64,
    pub max_validators: u32,
    pub slash: SlashFractions,
    pub jail_ms: u64,
    /// No commit signature for longer than this (block time): offline.
    pub offline_window_ms: u64,
    /// Paid to the commit's signers per finalized proof.
    pub reward_per_proof_micro: u64,
    /// Receives slashed stake.
    pub slash_destination: Operator,
}

impl Default for RegistryParams {
    /// The plan's values: 100,000 STEP minimum, 7 days unbonding, epochs
    /// of 1,000 proofs, 50 / 30 / 10 / 100 % slashes.
    fn default() -> Self {
        RegistryParams {
            min_stake_micro: 100_000 * MICRO,
            unbonding_ms: 7 * 24 * 3_600_000,
            epoch_length_proofs: 1_000,
            max_validators: 50,
            slash: SlashFractions::default(),
            jail_ms: 24 * 3_600_000,
            offline_window_ms: 24 * 3_600_000,
            reward_per_proof_micro: 10_000,
            slash_destination: Operator([0; 20]),
        }
    }
}

/// A validator of the genesis' initial set.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GenesisEntry {
    pub operator: Operator,
    pub consensus_key: PublicKey,
    pub p2p_id: String,
    pub stake_micro: u64,
}

/// The accounts the registry debits (stake) and credits (withdrawals,
/// slashed stake): the chain's balances.
pub trait Balances {
    fn balance(&self, account: &[u8; 20]) -> u64;
    fn set_balance(&mut self, account: [u8; 20], micro: u64);
}

impl Balances for BTreeMap<step_engine::Address, u64> {
    fn balance(&self, account: &[u8; 20]) -> u64 {
        self.get(&step_engine::Address(*account))
            .copied()
            .unwrap_or(0)
    }
    fn set_balance(&mut self, account: [u8; 20], micro: u64) {
        self.insert(step_engine::Address(account), micro);
    }
}

/// Why a genesis' initial set cannot start a registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisSetError {
    #[error(
        "validator {operator}: stake {stake_micro} micro-STEP is below the minimum {min_micro}"
    )]
    BelowMinimum {
        operator: Operator,
        stake_micro: u64,
        min_micro: u64,
    },
    #[error("operator {operator} appears twice")]
    DuplicateOperator { operator: Operator },
    #[error("consensus key of {operator} is another validator's")]
    DuplicateKey { operator: Operator },
    #[error("{count} validators, more than the maximum {max}")]
    TooMany { count: usize, max: u32 },
    #[error("no validators")]
    Empty,
    #[error(
        "validator {operator}: p2p id {p2p_id:?} is not a base58 peer id of at most 64 characters"
    )]
    BadP2pId { operator: Operator, p2p_id: String },
}

/// The registry: chain state, hashed into [`Registry::root`].
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Registry {
    pub params: RegistryParams,
    pub validators: BTreeMap<Operator, ValidatorRecord>,
    /// The next nonce each operator must use.
    pub nonces: BTreeMap<Operator, u64>,
    /// Evidence already counted (its id), so each piece counts once.
    pub evidence_seen: BTreeSet<[u8; 32]>,
    /// Block time of each active validator's latest commit signature.
    pub last_signed_ms: BTreeMap<Operator, u64>,
    /// The current epoch's number.
    pub epoch_number: u64,
    /// Finalized proofs since the current epoch began.
    pub epoch_proofs: u64,
    /// Rounding left over from rewards, paid with the next height's.
    pub reward_carry_micro: u64,
    /// Every epoch's set, oldest first (the current one last).
    pub epochs: Vec<EpochRecord>,
}

impl Registry {
    /// The registry at height 0: the genesis' set, active from height 1.
    pub fn genesis(
        params: RegistryParams,
        set: &[GenesisEntry],
        genesis_time_ms: u64,
    ) -> Result<Registry, GenesisSetError> {
        if set.is_empty() {
            return Err(GenesisSetError::Empty);
        }
        if set.len() > params.max_validators as usize {
            return Err(GenesisSetError::TooMany {
                count: set.len(),
                max: params.max_validators,
            });
        }
        let mut r = Registry {
            params,
            validators: BTreeMap::new(),
            nonces: BTreeMap::new(),
            evidence_seen: BTreeSet::new(),
            last_signed_ms: BTreeMap::new(),
            epoch_number: 0,
            epoch_proofs: 0,
            reward_carry_micro: 0,
            epochs: Vec::new(),
        };
        for e in set {
            if e.stake_micro < params.min_stake_micro {
                return Err(GenesisSetError::BelowMinimum {
                    operator: e.operator,
                    stake_micro: e.stake_micro,
                    min_micro: params.min_stake_micro,
                });
            }
            if !p2p_id_is_valid(&e.p2p_id) {
                return Err(GenesisSetError::BadP2pId {
                    operator: e.operator,
                    p2p_id: e.p2p_id.clone(),
                });
            }
            if r.key_in_use(&e.consensus_key) {
                return Err(GenesisSetError::DuplicateKey {
                    operator: e.operator,
                });
            }
            let rec = ValidatorRecord {
                operator: e.operator,
                consensus_key: e.consensus_key,
                next_consensus_key: None,
                p2p_id: e.p2p_id.clone(),
                stake_micro: e.stake_micro,
                unbonding: Vec::new(),
                status: Status::Active,
                rewards_micro: 0,
            };
            if r.validators.insert(e.operator, rec).is_some() {
                return Err(GenesisSetError::DuplicateOperator {
                    operator: e.operator,
                });
            }
            r.last_signed_ms.insert(e.operator, genesis_time_ms);
        }
        let set = r.next_set();
        r.epochs.push(EpochRecord {
            number: 0,
            start_height: 1,
            set,
        });
        Ok(r)
    }

    /// The record of `operator`.
    pub fn get(&self, operator: &Operator) -> Option<&ValidatorRecord> {
        self.validators.get(operator)
    }

    /// The nonce `operator`'s next transaction must carry.
    pub fn next_nonce(&self, operator: &Operator) -> u64 {
        self.nonces.get(operator).copied().unwrap_or(0)
    }

    /// Whether a validator other than an exited one holds `key` (current or
    /// rotated-to).
    pub fn key_in_use(&self, key: &PublicKey) -> bool {
        self.validators.values().any(|v| {
            v.status != Status::Exited
                && (v.consensus_key == *key || v.next_consensus_key == Some(*key))
        })
    }

    /// SHA-256 over the domain and the registry's canonical (borsh) bytes:
    /// identical on every validator that executed the same blocks.
    pub fn root(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"STEP-REGISTRY-v1\n");
        // Writing into a Vec cannot fail; a failure here is a bug.
        let bytes = borsh::to_vec(self).expect("borsh into a Vec");
        h.update(bytes);
        h.finalize().into()
    }
}

/// A libp2p peer id as text: base58 (Bitcoin alphabet), 1–64 characters.
pub fn p2p_id_is_valid(s: &str) -> bool {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    !s.is_empty() && s.len() <= P2P_ID_MAX_LEN && s.bytes().all(|b| ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests;
