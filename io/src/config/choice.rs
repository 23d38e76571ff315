//! Keys whose value names a kind (the ledger, the recovery backend), read
//! into types rather than kept as text, and the keys renamed since the first
//! release (both once called `backend`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use step_engine::Backend;

/// Which ledger a node runs (`node.ledger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerKind {
    /// BFT consensus among the genesis' validators (the default).
    #[default]
    Consensus,
    /// One process, in memory, not fault tolerant: for development only.
    Local,
}

/// (old key, new key): the old name is still read, from a file, the
/// environment or a flag, with a warning naming the new one.
pub const RENAMED: [(&str, &str); 2] = [
    ("node.backend", "node.ledger"),
    ("pipeline.backend", "pipeline.recovery"),
];

/// The key `path` is now called, if it was renamed.
pub fn renamed(path: &str) -> Option<&'static str> {
    RENAMED
        .iter()
        .find(|(old, _)| *old == path)
        .map(|(_, new)| *new)
}

/// Logs each renamed key a file still uses.
pub fn warn_renamed_in(text: &str) {
    let Ok(toml::Value::Table(t)) = text.parse::<toml::Value>() else {
        return; // the typed parse that follows reports the error
    };
    for (old, new) in RENAMED {
        let Some((section, key)) = old.split_once('.') else {
            continue;
        };
        if t.get(section).and_then(|s| s.get(key)).is_some() {
            tracing::warn!("configuration key `{old}` is now `{new}`: rename it");
        }
    }
}

/// `pipeline.recovery` as the engine's [`Backend`], written by its name; a
/// name that is unknown or not compiled in is an error naming those that are.
pub mod recovery {
    use super::*;

    pub fn serialize<S: Serializer>(b: &Backend, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(b.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Backend, D::Error> {
        let name = String::deserialize(d)?;
        Backend::from_name(&name).ok_or_else(|| {
            let known: Vec<&str> = Backend::all().iter().map(|b| b.name()).collect();
            serde::de::Error::custom(format!(
                "unknown or not compiled-in recovery backend {name:?} (compiled in: {})",
                known.join(", ")
            ))
        })
    }
}
