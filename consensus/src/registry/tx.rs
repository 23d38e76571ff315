//! Validator transactions: what an operator signs with its Ethereum cold
//! key (EIP-191 `personal_sign`, so a wallet it already has can sign), and
//! the check that the signature is the operator's.
//!
//! The signed text is line-based and readable in a wallet's prompt:
//!
//! ```text
//! STEP validator transaction v1
//! chain: <64 hex: the genesis hash>
//! operator: 0x<40 hex>
//! nonce: <n>
//! kind: register
//! consensus_key: <64 hex>
//! p2p_id: <base58>
//! stake_micro: <n>
//! ```
//!
//! `kind` is one of `register`, `stake`, `unbond`, `rotate-key`, `withdraw`,
//! `unjail`; the lines after it are that kind's fields, in this order.

use borsh::{BorshDeserialize, BorshSerialize};
use step_engine::crypto::{check_policy, Backend};
use step_engine::message::eip191_digest;

use super::Operator;
use crate::context::PublicKey;

/// What a transaction does.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum TxKind {
    /// Bond `stake_micro` from the operator's balance as a new validator.
    Register {
        consensus_key: PublicKey,
        p2p_id: String,
        stake_micro: u64,
    },
    /// Bond more.
    AddStake { amount_micro: u64 },
    /// Begin unbonding `amount_micro` (all of it: leave the set).
    Unbond { amount_micro: u64 },
    /// A new hot key, in the set from the next epoch.
    RotateKey { consensus_key: PublicKey },
    /// Matured unbonding stake and accrued rewards to the operator's account.
    Withdraw,
    /// Back to active after the jail time.
    Unjail,
}

impl TxKind {
    pub fn name(&self) -> &'static str {
        match self {
            TxKind::Register { .. } => "register",
            TxKind::AddStake { .. } => "stake",
            TxKind::Unbond { .. } => "unbond",
            TxKind::RotateKey { .. } => "rotate-key",
            TxKind::Withdraw => "withdraw",
            TxKind::Unjail => "unjail",
        }
    }
}

/// A signed validator transaction, as blocks carry it.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct ValidatorTx {
    pub operator: Operator,
    pub nonce: u64,
    pub kind: TxKind,
    /// r ‖ s ‖ v (v = 27/28, low s), EIP-191 over [`ValidatorTx::signed_text`].
    pub signature: [u8; 65],
}

/// Why a validator transaction was refused. Each has a stable code
/// ([`TxError::code`]) for the HTTP API and the CLI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("the signature does not recover to operator {operator}: {reason}")]
    BadSignature { operator: Operator, reason: String },
    #[error("nonce {got} was already used by {operator} (next is {expected}): a replay")]
    Replay {
        operator: Operator,
        expected: u64,
        got: u64,
    },
    #[error("nonce {got} skips ahead: {operator}'s next nonce is {expected}")]
    WrongNonce {
        operator: Operator,
        expected: u64,
        got: u64,
    },
    #[error("{operator} is not a registered validator")]
    UnknownValidator { operator: Operator },
    #[error("{operator} is already registered")]
    AlreadyRegistered { operator: Operator },
    #[error("stake {stake_micro} micro-STEP is below the minimum {min_micro}")]
    BelowMinimum { stake_micro: u64, min_micro: u64 },
    #[error("balance {balance_micro} micro-STEP cannot bond {amount_micro}")]
    InsufficientBalance {
        balance_micro: u64,
        amount_micro: u64,
    },
    #[error("cannot unbond {asked_micro} micro-STEP: {bonded_micro} bonded")]
    UnbondMoreThanBonded { bonded_micro: u64, asked_micro: u64 },
    #[error("{operator} has nothing to withdraw")]
    NothingToWithdraw { operator: Operator },
    #[error("{operator}'s stake is still unbonding until {release_ms} (block time {now_ms})")]
    StillUnbonding {
        operator: Operator,
        release_ms: u64,
        now_ms: u64,
    },
    #[error("{operator} is not jailed")]
    NotJailed { operator: Operator },
    #[error("{operator} is jailed until {until_ms} (block time {now_ms})")]
    StillJailed {
        operator: Operator,
        until_ms: u64,
        now_ms: u64,
    },
    #[error("{operator} is banned")]
    Banned { operator: Operator },
    #[error("{operator} is {status}: this transaction needs an active or jailed validator")]
    NotBonded {
        operator: Operator,
        status: &'static str,
    },
    #[error("the consensus key is another validator's")]
    KeyInUse,
    #[error("the consensus key is not a valid ed25519 public key")]
    BadConsensusKey,
    #[error("p2p id {p2p_id:?} is not a base58 peer id of at most 64 characters")]
    BadP2pId { p2p_id: String },
    #[error("the amount must be more than 0")]
    ZeroAmount,
    #[error("the registry holds {max} validators already")]
    SetFull { max: u32 },
    #[error("an amount overflows")]
    Overflow,
}

impl TxError {
    /// The wire code (`VALIDATOR_*`), stable across releases.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::BadSignature { .. } => "VALIDATOR_BAD_SIGNATURE",
            TxError::Replay { .. } => "VALIDATOR_TX_REPLAY",
            TxError::WrongNonce { .. } => "VALIDATOR_WRONG_NONCE",
            TxError::UnknownValidator { .. } => "VALIDATOR_UNKNOWN",
            TxError::AlreadyRegistered { .. } => "VALIDATOR_ALREADY_REGISTERED",
            TxError::BelowMinimum { .. } => "VALIDATOR_BELOW_MINIMUM_STAKE",
            TxError::InsufficientBalance { .. } => "VALIDATOR_INSUFFICIENT_BALANCE",
            TxError::UnbondMoreThanBonded { .. } => "VALIDATOR_UNBOND_MORE_THAN_BONDED",
            TxError::NothingToWithdraw { .. } => "VALIDATOR_NOTHING_TO_WITHDRAW",
            TxError::StillUnbonding { .. } => "VALIDATOR_STILL_UNBONDING",
            TxError::NotJailed { .. } => "VALIDATOR_NOT_JAILED",
            TxError::StillJailed { .. } => "VALIDATOR_STILL_JAILED",
            TxError::Banned { .. } => "VALIDATOR_BANNED",
            TxError::NotBonded { .. } => "VALIDATOR_NOT_BONDED",
            TxError::KeyInUse => "VALIDATOR_KEY_IN_USE",
            TxError::BadConsensusKey => "VALIDATOR_BAD_CONSENSUS_KEY",
            TxError::BadP2pId { .. } => "VALIDATOR_BAD_P2P_ID",
            TxError::ZeroAmount => "VALIDATOR_ZERO_AMOUNT",
            TxError::SetFull { .. } => "VALIDATOR_SET_FULL",
            TxError::Overflow => "VALIDATOR_AMOUNT_OVERFLOW",
        }
    }
}

/// The text an operator signs for a transaction of `kind` with `nonce` on
/// `chain` (the module's doc shows it).
pub fn signed_text(chain: &[u8; 32], operator: &Operator, nonce: u64, kind: &TxKind) -> String {
    let head = format!(
        "STEP validator transaction v1\nchain: {}\noperator: {operator}\nnonce: {nonce}\nkind: {}",
        hex::encode(chain),
        kind.name()
    );
    let fields = match kind {
        TxKind::Register {
            consensus_key,
            p2p_id,
            stake_micro,
        } => format!(
            "\nconsensus_key: {}\np2p_id: {p2p_id}\nstake_micro: {stake_micro}",
            hex::encode(consensus_key.0)
        ),
        TxKind::AddStake { amount_micro } | TxKind::Unbond { amount_micro } => {
            format!("\namount_micro: {amount_micro}")
        }
        TxKind::RotateKey { consensus_key } => {
            format!("\nconsensus_key: {}", hex::encode(consensus_key.0))
        }
        TxKind::Withdraw | TxKind::Unjail => String::new(),
    };
    head + &fields
}

impl ValidatorTx {
    /// The EIP-191 digest the signature covers.
    pub fn digest(&self, chain: &[u8; 32]) -> [u8; 32] {
        eip191_digest(signed_text(chain, &self.operator, self.nonce, &self.kind).as_bytes())
    }

    /// Checks that the signature is the operator's (the engine's policy:
    /// v 27/28, low s; then recovery).
    pub fn verify_signature(&self, chain: &[u8; 32]) -> Result<(), TxError> {
        let bad = |reason: String| TxError::BadSignature {
            operator: self.operator,
            reason,
        };
        let sig = check_policy(&self.signature).map_err(|e| bad(e.to_string()))?;
        let pubkey = Backend::default()
            .recover(&self.digest(chain), &sig)
            .map_err(|e| bad(e.to_string()))?;
        let signer = step_engine::Address::from_public_key(&pubkey);
        if signer.0 != self.operator.0 {
            return Err(bad(format!("signed by 0x{}", hex::encode(signer.0))));
        }
        Ok(())
    }
}
