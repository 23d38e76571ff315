//! A validator's libp2p identity key, separate from its consensus key
//! (issue 15 item 6; malachite's users: "P2P key and consensus key should
//! not be the same key"). The consensus key signs votes and proposals; this
//! one only authenticates the validator's connections. `step node` reads it
//! from its own file (`p2p_key.toml`); the validator proof sent at connection
//! time binds the two (malachite ADR-006).

use malachitebft_app_channel::app::types::Keypair;
use sha2::{Digest, Sha256};

use crate::context::PrivateKey;
use crate::error::ConsensusNodeError;

/// An ed25519 secret key for libp2p.
#[derive(Clone, PartialEq, Eq)]
pub struct P2pKey([u8; 32]);

impl std::fmt::Debug for P2pKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("P2pKey").field(&"<secret>").finish()
    }
}

impl P2pKey {
    pub fn from_bytes(bytes: [u8; 32]) -> P2pKey {
        P2pKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key derived from a consensus key: what in-process test clusters
    /// use, so they need no second file. `step node` never uses it.
    pub fn derived_from(consensus: &PrivateKey) -> P2pKey {
        let d = Sha256::digest([b"STEP-P2P-KEY-v1\n".as_slice(), consensus.as_bytes()].concat());
        P2pKey(d.into())
    }

    /// The libp2p keypair.
    pub fn keypair(&self) -> Result<Keypair, ConsensusNodeError> {
        Keypair::ed25519_from_bytes(self.0).map_err(|e| ConsensusNodeError::EngineStart {
            reason: format!("P2P key: {e}"),
        })
    }

    /// The libp2p peer id (base58), as other nodes see this validator.
    pub fn peer_id(&self) -> Result<String, ConsensusNodeError> {
        Ok(self.keypair()?.public().to_peer_id().to_base58())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_p2p_identity_is_not_the_consensus_key() {
        let consensus = PrivateKey::from([7u8; 32]);
        let p2p = P2pKey::derived_from(&consensus);
        assert_ne!(p2p.as_bytes(), consensus.as_bytes());
        let other = P2pKey::from_bytes([8u8; 32]);
        assert_ne!(p2p.peer_id().unwrap(), other.peer_id().unwrap());
        assert_eq!(
            other.peer_id().unwrap(),
            P2pKey::from_bytes([8u8; 32]).peer_id().unwrap()
        );
        assert!(!format!("{other:?}").contains("08"));
    }
}
