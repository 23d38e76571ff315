//! A chain's initial state (height 0): what a network imported from Phase 2
//! starts from (`step migrate import`, `docs/MIGRATION_GUIDE.md`).
//!
//! The file is JSON ([`InitialStateFile`]): accounts sorted by address, each
//! with its balance, its last accepted proof (the speed gate's and the
//! moratorium's reference) and every nonce it used; triangles sorted by id
//! with their clicks and whether they are subdivided. [`ChainState::from_initial`]
//! checks it and derives the state root at height 0,
//! `SHA-256(INITIAL_DOMAIN ‖ every field, length-prefixed)`, which the genesis
//! names (`initial_state_root`) so every validator starts from the same state
//! or refuses to start. A chain without an initial state starts from
//! [`ChainState::default`] (root all zeros), as before.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use step_engine::heuristics::LastProof;
use step_engine::proof::Nonce;
use step_engine::triangle::LEVEL_MAX;
use step_engine::{Address, TriangleId};

use crate::execution::{
    Account, ChainState, MemoryTables, StateRoot, TriangleRow, TriangleState, CLICKS_MAX,
    SUBDIVIDE_AT_CLICK,
};

/// The file's `format` field.
pub const INITIAL_STATE_FORMAT: &str = "step-initial-state-v1";
/// Domain separator of the height-0 root.
pub const INITIAL_DOMAIN: &[u8] = b"STEP-INITIAL-v1\n";

/// The initial-state file, as written and read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialStateFile {
    pub format: String,
    /// Sorted by address (lower-case hex), each address once.
    pub accounts: Vec<InitialAccount>,
    /// Sorted by id, each id once.
    pub triangles: Vec<InitialTriangle>,
}

/// One account at height 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialAccount {
    /// `0x` and 40 lower-case hex digits.
    pub address: String,
    pub balance_micro: u64,
    /// The account's last accepted proof, if it has one.
    pub last: Option<InitialLast>,
    /// Every nonce the account used, sorted, each once.
    pub nonces: Vec<String>,
}

/// An account's last accepted proof: its own timestamp and position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialLast {
    pub unix_ms: i64,
    pub lat: f64,
    pub lon: f64,
}

/// One triangle at height 0 (a triangle not listed is active with 0 clicks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialTriangle {
    pub id: String,
    pub clicks: u8,
    pub subdivided: bool,
}

/// Why an initial state cannot be a chain's state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InitialStateError {
    #[error("format is {found:?}, expected {INITIAL_STATE_FORMAT:?}")]
    Format { found: String },
    #[error("accounts[{index}]: address {address:?} is not 0x and 40 lower-case hex digits")]
    Address { index: usize, address: String },
    #[error("accounts[{index}]: {address} is not after the previous account (sorted, each once)")]
    AccountOrder { index: usize, address: String },
    #[error("accounts[{index}] ({address}): nonce {nonce:?} is not a nonce")]
    Nonce {
        index: usize,
        address: String,
        nonce: String,
    },
    #[error("accounts[{index}] ({address}): nonce {nonce:?} is not after the previous one (sorted, each once)")]
    NonceOrder {
        index: usize,
        address: String,
        nonce: String,
    },
    #[error("accounts[{index}] ({address}): a last proof at ({lat}, {lon}) is not a position")]
    Position {
        index: usize,
        address: String,
        lat: f64,
        lon: f64,
    },
    #[error("accounts[{index}] ({address}): a last proof without any nonce, or nonces without a last proof")]
    LastWithoutNonces { index: usize, address: String },
    #[error("triangles[{index}]: {id:?} is not a triangle id")]
    Triangle { index: usize, id: String },
    #[error("triangles[{index}]: {id} is not after the previous triangle (sorted, each once)")]
    TriangleOrder { index: usize, id: String },
    #[error("triangles[{index}] ({id}): {reason}")]
    TriangleState {
        index: usize,
        id: String,
        reason: &'static str,
    },
    #[error("the sum of the balances overflows u64")]
    BalanceOverflow,
    #[error("not JSON of an initial state: {0}")]
    Json(String),
}

/// Whether Phase 3's execution can reach `(clicks, subdivided)` at `level`;
/// the reason why not otherwise.
pub fn triangle_state_reason(level: u8, clicks: u8, subdivided: bool) -> Option<&'static str> {
    if clicks > CLICKS_MAX {
        Some("more than 28 clicks")
    } else if subdivided && level >= LEVEL_MAX {
        Some("a level-21 triangle cannot be subdivided")
    } else if subdivided && clicks != SUBDIVIDE_AT_CLICK {
        Some("subdivided, but not at its 11th click")
    } else if !subdivided && level < LEVEL_MAX && clicks >= SUBDIVIDE_AT_CLICK {
        Some("11 or more clicks below level 21, but not subdivided")
    } else {
        None
    }
}

impl InitialStateFile {
    /// Parses the file's bytes.
    pub fn from_json(bytes: &[u8]) -> Result<InitialStateFile, InitialStateError> {
        serde_json::from_slice(bytes).map_err(|e| InitialStateError::Json(e.to_string()))
    }

    /// The file's text (pretty JSON, one field a line).
    pub fn to_json(&self) -> Result<Vec<u8>, InitialStateError> {
        serde_json::to_vec_pretty(self).map_err(|e| InitialStateError::Json(e.to_string()))
    }
}

struct Hasher(Sha256);

impl Hasher {
    fn len(&mut self, n: usize) {
        self.0.update((n as u64).to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.update(b);
    }
}

impl ChainState {
    /// The state at height 0 that `file` describes, with its root. Every
    /// rule Phase 3's execution keeps is checked: a state it could not reach
    /// is refused, never repaired.
    pub fn from_initial(file: &InitialStateFile) -> Result<ChainState, InitialStateError> {
        if file.format != INITIAL_STATE_FORMAT {
            return Err(InitialStateError::Format {
                found: file.format.clone(),
            });
        }
        let mut s = MemoryTables::default();
        let mut accepted_total = 0u64;
        let mut h = Hasher(Sha256::new());
        h.0.update(INITIAL_DOMAIN);
        h.len(file.accounts.len());
        let mut previous: Option<Address> = None;
        let mut total: u64 = 0;
        for (index, a) in file.accounts.iter().enumerate() {
            let address = Address::parse(&a.address)
                .filter(|p| p.to_string() == a.address)
                .ok_or_else(|| InitialStateError::Address {
                    index,
                    address: a.address.clone(),
                })?;
            if previous.is_some_and(|p| p >= address) {
                return Err(InitialStateError::AccountOrder {
                    index,
                    address: a.address.clone(),
                });
            }
            previous = Some(address);
            if a.last.is_some() == a.nonces.is_empty() {
                return Err(InitialStateError::LastWithoutNonces {
                    index,
                    address: a.address.clone(),
                });
            }
            h.bytes(&address.0);
            h.0.update(a.balance_micro.to_le_bytes());
            total = total
                .checked_add(a.balance_micro)
                .ok_or(InitialStateError::BalanceOverflow)?;
            let mut account = Account {
                balance_micro: a.balance_micro,
                proofs: a.nonces.len() as u64,
                last: None,
            };
            if let Some(l) = a.last {
                let ok = l.lat.is_finite()
                    && l.lon.is_finite()
                    && (-90.0..=90.0).contains(&l.lat)
                    && (-180.0..=180.0).contains(&l.lon);
                if !ok {
                    return Err(InitialStateError::Position {
                        index,
                        address: a.address.clone(),
                        lat: l.lat,
                        lon: l.lon,
                    });
                }
                h.0.update([1]);
                h.0.update(l.unix_ms.to_le_bytes());
                h.0.update(l.lat.to_bits().to_le_bytes());
                h.0.update(l.lon.to_bits().to_le_bytes());
                account.last = Some(LastProof {
                    unix_ms: l.unix_ms,
                    lat: l.lat,
                    lon: l.lon,
                });
            } else {
                h.0.update([0]);
            }
            h.len(a.nonces.len());
            let mut prev_nonce: Option<&str> = None;
            for n in &a.nonces {
                let bad = |nonce: &String| InitialStateError::Nonce {
                    index,
                    address: a.address.clone(),
                    nonce: nonce.clone(),
                };
                let nonce = Nonce::parse(n).ok_or_else(|| bad(n))?;
                if prev_nonce.is_some_and(|p| p >= n.as_str()) {
                    return Err(InitialStateError::NonceOrder {
                        index,
                        address: a.address.clone(),
                        nonce: n.clone(),
                    });
                }
                prev_nonce = Some(n);
                h.bytes(n.as_bytes());
                s.nonces.insert((address, nonce));
            }
            if account != Account::default() {
                s.accounts.insert(address, account);
            }
            accepted_total += account.proofs;
        }
        h.len(file.triangles.len());
        let mut previous: Option<TriangleId> = None;
        for (index, t) in file.triangles.iter().enumerate() {
            let id = TriangleId::parse(&t.id)
                .ok()
                .filter(|p| p.to_string() == t.id)
                .ok_or_else(|| InitialStateError::Triangle {
                    index,
                    id: t.id.clone(),
                })?;
            if previous.is_some_and(|p| p.to_string() >= t.id) {
                return Err(InitialStateError::TriangleOrder {
                    index,
                    id: t.id.clone(),
                });
            }
            previous = Some(id);
            if let Some(reason) = triangle_state_reason(id.level(), t.clicks, t.subdivided) {
                return Err(InitialStateError::TriangleState {
                    index,
                    id: t.id.clone(),
                    reason,
                });
            }
            h.bytes(t.id.as_bytes());
            h.0.update([t.clicks, u8::from(t.subdivided)]);
            s.triangles.insert(
                id,
                TriangleRow {
                    state: TriangleState {
                        clicks: t.clicks,
                        subdivided: t.subdivided,
                    },
                    last_click_ms: None,
                },
            );
        }
        let root: StateRoot = h.0.finalize().into();
        Ok(ChainState::in_memory(0, root, accepted_total, s))
    }
}
