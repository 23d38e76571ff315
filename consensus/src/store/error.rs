//! [`StoreError`]: every way the store fails, with the file it concerns.

use std::path::PathBuf;

/// A store failure, with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: Box<redb::DatabaseError>,
    },
    #[error("store {path}: {operation} failed: {reason}")]
    Backend {
        path: PathBuf,
        operation: &'static str,
        reason: String,
    },
    #[error("store {path}: ({account}, nonce {nonce:?}) was already used at height {first}; height {height} uses it again")]
    NonceReused {
        path: PathBuf,
        account: String,
        nonce: String,
        first: u64,
        height: u64,
    },
    #[error("store {path}: record {what} at height {height} does not encode: {reason}")]
    Encode {
        path: PathBuf,
        what: &'static str,
        height: u64,
        reason: String,
    },
    #[error("store {path}: record {what} at height {height} does not decode: {reason}")]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        height: u64,
        reason: String,
    },
    #[error("store {path} has schema version {found}; this step binary reads versions up to {supported}. Run a step release that supports schema {found}, or restore a backup this release wrote")]
    SchemaTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("store {path}: the state tables at height {height} do not match their checksum (stored {stored}, computed {computed}): the store is corrupt; restore a backup or sync a fresh store from the network")]
    StateChecksum {
        path: PathBuf,
        height: u64,
        stored: String,
        computed: String,
    },
    #[error("store {path}: the state head (height {head_height}, root {head_root}) is not the last decided height's ({decided_height}, root {decided_root}): the store is corrupt")]
    HeadMismatch {
        path: PathBuf,
        head_height: u64,
        head_root: String,
        decided_height: u64,
        decided_root: String,
    },
    #[error("store {path} holds a chain whose initial state (height 0) has root {stored}; the genesis names {genesis}: the store belongs to another chain. Point the node at its own home, or move this store away and let the node sync")]
    InitialStateMismatch {
        path: PathBuf,
        stored: String,
        genesis: String,
    },
    #[error("store {path}: the change set of height {height} gives root {computed}, the stored root is {stored}")]
    RootMismatch {
        path: PathBuf,
        height: u64,
        stored: String,
        computed: String,
    },
}
