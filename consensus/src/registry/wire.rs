//! The JSON form of a signed validator transaction: what `step validator`
//! prints and what a client submits. Bounded (4 KiB), strict (unknown
//! fields refused), every field checked; amounts are decimal strings of
//! micro-STEP, like balances.
//!
//! ```json
//! {"operator":"0x…","nonce":0,"kind":"register","consensus_key":"…64 hex…",
//!  "p2p_id":"12D3KooW…","stake_micro":"100000000000","signature":"0x…130 hex…"}
//! ```

use serde::{Deserialize, Serialize};

use super::tx::{TxKind, ValidatorTx};
use super::Operator;
use crate::context::PublicKey;

/// Largest JSON transaction accepted.
pub const TX_JSON_MAX_BYTES: usize = 4_096;

/// Why a JSON transaction could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxWireError {
    #[error("a validator transaction is at most {max} bytes; this one is {len}")]
    TooLarge { len: usize, max: usize },
    #[error("invalid validator transaction JSON: {reason}")]
    Json { reason: String },
    #[error("`{field}` must be {expected}")]
    BadField {
        field: &'static str,
        expected: &'static str,
    },
    #[error("kind {kind:?} is not one of register, stake, unbond, rotate-key, withdraw, unjail")]
    UnknownKind { kind: String },
}

impl TxWireError {
    pub fn code(&self) -> &'static str {
        match self {
            TxWireError::TooLarge { .. } => "PAYLOAD_TOO_LARGE",
            _ => "VALIDATOR_INVALID_TX",
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TxJson {
    operator: String,
    nonce: u64,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    consensus_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p2p_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stake_micro: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    amount_micro: Option<String>,
    signature: String,
}

fn hex_field<const N: usize>(
    s: &str,
    field: &'static str,
    expected: &'static str,
) -> Result<[u8; N], TxWireError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s.strip_prefix("0x").unwrap_or(s), &mut out)
        .map_err(|_| TxWireError::BadField { field, expected })?;
    Ok(out)
}

fn required<'a>(
    v: &'a Option<String>,
    field: &'static str,
    expected: &'static str,
) -> Result<&'a str, TxWireError> {
    v.as_deref()
        .ok_or(TxWireError::BadField { field, expected })
}

fn micro(v: &Option<String>, field: &'static str) -> Result<u64, TxWireError> {
    let expected = "a decimal string of micro-STEP";
    let s = required(v, field, expected)?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TxWireError::BadField { field, expected });
    }
    s.parse()
        .map_err(|_| TxWireError::BadField { field, expected })
}

fn key(v: &Option<String>) -> Result<PublicKey, TxWireError> {
    let expected = "64 hex digits (an ed25519 public key)";
    Ok(PublicKey(hex_field(
        required(v, "consensus_key", expected)?,
        "consensus_key",
        expected,
    )?))
}

impl ValidatorTx {
    /// The JSON form.
    pub fn to_json(&self) -> String {
        let mut j = TxJson {
            operator: self.operator.to_string(),
            nonce: self.nonce,
            kind: self.kind.name().into(),
            signature: format!("0x{}", hex::encode(self.signature)),
            ..TxJson::default()
        };
        match &self.kind {
            TxKind::Register {
                consensus_key,
                p2p_id,
                stake_micro,
            } => {
                j.consensus_key = Some(hex::encode(consensus_key.0));
                j.p2p_id = Some(p2p_id.clone());
                j.stake_micro = Some(stake_micro.to_string());
            }
            TxKind::AddStake { amount_micro } | TxKind::Unbond { amount_micro } => {
                j.amount_micro = Some(amount_micro.to_string());
            }
            TxKind::RotateKey { consensus_key } => {
                j.consensus_key = Some(hex::encode(consensus_key.0));
            }
            TxKind::Withdraw | TxKind::Unjail => {}
        }
        // A struct of strings and integers always serializes.
        serde_json::to_string(&j).expect("a TxJson serializes")
    }

    /// Reads the JSON form (its signature is not checked here).
    pub fn from_json(bytes: &[u8]) -> Result<ValidatorTx, TxWireError> {
        if bytes.len() > TX_JSON_MAX_BYTES {
            return Err(TxWireError::TooLarge {
                len: bytes.len(),
                max: TX_JSON_MAX_BYTES,
            });
        }
        let j: TxJson = serde_json::from_slice(bytes).map_err(|e| TxWireError::Json {
            reason: e.to_string(),
        })?;
        let kind = match j.kind.as_str() {
            "register" => TxKind::Register {
                consensus_key: key(&j.consensus_key)?,
                p2p_id: required(&j.p2p_id, "p2p_id", "a libp2p peer id")?.to_owned(),
                stake_micro: micro(&j.stake_micro, "stake_micro")?,
            },
            "stake" => TxKind::AddStake {
                amount_micro: micro(&j.amount_micro, "amount_micro")?,
            },
            "unbond" => TxKind::Unbond {
                amount_micro: micro(&j.amount_micro, "amount_micro")?,
            },
            "rotate-key" => TxKind::RotateKey {
                consensus_key: key(&j.consensus_key)?,
            },
            "withdraw" => TxKind::Withdraw,
            "unjail" => TxKind::Unjail,
            other => {
                return Err(TxWireError::UnknownKind {
                    kind: other.to_owned(),
                })
            }
        };
        Ok(ValidatorTx {
            operator: Operator(hex_field(&j.operator, "operator", "0x and 40 hex digits")?),
            nonce: j.nonce,
            kind,
            signature: hex_field(&j.signature, "signature", "0x and 130 hex digits")?,
        })
    }
}
