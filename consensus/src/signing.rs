//! ed25519 signing of votes, proposals and the validator proof, with a
//! domain tag per message kind (`docs/adr/0020-malachite.md`).
//!
//! Preimage = tag ‖ chain ‖ borsh(message), where `chain` is the
//! [`ChainId`]: the SHA-256 of the genesis' canonical bytes, so a vote or
//! proposal signed for one genesis never verifies under another
//! (`docs/CONSENSUS_SPEC.md`, "Chain id"). Vote extensions are disabled in
//! STEP; their signature covers the tag and the chain alone.

use async_trait::async_trait;
use borsh::BorshSerialize;
use malachitebft_core_types::{SignedMessage, ValidatorProof, VoteExtensionScope};
use malachitebft_signing::{Error, Signer, VerificationResult, Verifier};

use crate::context::{PrivateKey, Proposal, PublicKey, Signature, StepContext, Vote};

pub const VOTE_TAG: &[u8] = b"STEP-VOTE-v1\n";
pub const PROPOSAL_TAG: &[u8] = b"STEP-PROPOSAL-v1\n";
pub const EXTENSION_TAG: &[u8] = b"STEP-EXTENSION-v1\n";

/// The chain every signature commits to: SHA-256 of the genesis' canonical
/// bytes (`step_io::genesis::Genesis::chain`). Its text form, the chain id
/// operators see, is `<genesis name>-<first 8 bytes, hex>`. All zeros only
/// in tests and benches that build their settings by hand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChainId(pub [u8; 32]);

impl std::fmt::Display for ChainId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::context::hex(&self.0))
    }
}

fn preimage<T: BorshSerialize>(tag: &[u8], chain: &ChainId, msg: &T) -> Vec<u8> {
    let mut out = [tag, &chain.0].concat();
    msg.serialize(&mut out)
        .expect("borsh into a Vec does not fail");
    out
}

fn vote_preimage(chain: &ChainId, v: &Vote) -> Vec<u8> {
    let mut v = v.clone();
    v.extension = None;
    preimage(VOTE_TAG, chain, &v)
}

fn extension_preimage(chain: &ChainId) -> Vec<u8> {
    [EXTENSION_TAG, &chain.0].concat()
}

fn check(pk: &PublicKey, msg: &[u8], sig: &Signature) -> VerificationResult {
    let ok = ed25519_consensus::VerificationKey::try_from(pk.0)
        .and_then(|vk| vk.verify(&ed25519_consensus::Signature::from(sig.0), msg))
        .is_ok();
    VerificationResult::from_bool(ok)
}

/// True when `sig` is `pk`'s signature of `vote` for `chain` (extension
/// excluded).
pub fn vote_signature_ok(chain: &ChainId, vote: &Vote, sig: &Signature, pk: &PublicKey) -> bool {
    check(pk, &vote_preimage(chain, vote), sig).is_valid()
}

/// True when `sig` is `pk`'s signature of `proposal` for `chain`.
pub fn proposal_signature_ok(
    chain: &ChainId,
    proposal: &Proposal,
    sig: &Signature,
    pk: &PublicKey,
) -> bool {
    check(pk, &preimage(PROPOSAL_TAG, chain, proposal), sig).is_valid()
}

/// Signs with one validator's private key.
#[derive(Clone)]
pub struct StepSigner {
    key: PrivateKey,
    chain: ChainId,
}

impl std::fmt::Debug for StepSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepSigner")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl StepSigner {
    pub fn new(key: PrivateKey, chain: ChainId) -> Self {
        StepSigner { key, chain }
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verification_key().to_bytes())
    }

    fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.key.sign(msg).to_bytes())
    }
}

#[async_trait]
impl Signer<StepContext> for StepSigner {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedMessage<StepContext, Vote>, Error> {
        let s = self.sign(&vote_preimage(&self.chain, &vote));
        Ok(SignedMessage::new(vote, s))
    }

    async fn sign_proposal(
        &self,
        p: Proposal,
    ) -> Result<SignedMessage<StepContext, Proposal>, Error> {
        let s = self.sign(&preimage(PROPOSAL_TAG, &self.chain, &p));
        Ok(SignedMessage::new(p, s))
    }

    async fn sign_vote_extension(
        &self,
        _scope: VoteExtensionScope<StepContext>,
        ext: (),
    ) -> Result<SignedMessage<StepContext, ()>, Error> {
        Ok(SignedMessage::new(
            ext,
            self.sign(&extension_preimage(&self.chain)),
        ))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<StepContext>, Error> {
        let bytes = ValidatorProof::<StepContext>::signing_bytes(&public_key, &peer_id);
        Ok(ValidatorProof::new(public_key, peer_id, self.sign(&bytes)))
    }
}

/// Verifies the signatures of [`StepSigner`].
#[derive(Clone, Copy, Debug, Default)]
pub struct StepVerifier {
    pub chain: ChainId,
}

#[async_trait]
impl Verifier<StepContext> for StepVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        sig: &Signature,
        pk: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Ok(check(pk, &vote_preimage(&self.chain, vote), sig))
    }

    async fn verify_signed_proposal(
        &self,
        p: &Proposal,
        sig: &Signature,
        pk: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Ok(check(pk, &preimage(PROPOSAL_TAG, &self.chain, p), sig))
    }

    async fn verify_signed_vote_extension(
        &self,
        _scope: &VoteExtensionScope<StepContext>,
        _ext: &(),
        sig: &Signature,
        pk: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Ok(check(pk, &extension_preimage(&self.chain), sig))
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<StepContext>,
    ) -> Result<VerificationResult, Error> {
        let Ok(pk) = proof.decoded_public_key() else {
            return Ok(VerificationResult::Invalid);
        };
        Ok(check(&pk, &proof.preimage(), &proof.signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Height, StepContext, ValidatorAddress, Value};
    use malachitebft_core_types::{Context as _, NilOrVal, Round, Value as _};

    /// A vote or proposal signed for one genesis does not verify under
    /// another: the chain is in every preimage.
    #[tokio::test]
    async fn a_signature_for_one_chain_does_not_verify_for_another() {
        let key = PrivateKey::from([7; 32]);
        let (a, b) = (ChainId([1; 32]), ChainId([2; 32]));
        let signer = StepSigner::new(key, a);
        let pk = signer.public_key();
        let value = Value::default();
        let vote = StepContext.new_prevote(
            Height(3),
            Round::new(0),
            NilOrVal::Val(value.id()),
            ValidatorAddress::from_public_key(&pk),
        );
        let signed = signer.sign_vote(vote.clone()).await.expect("sign");
        assert!(vote_signature_ok(&a, &vote, &signed.signature, &pk));
        assert!(!vote_signature_ok(&b, &vote, &signed.signature, &pk));
        let proposal = StepContext.new_proposal(
            Height(3),
            Round::new(0),
            value,
            Round::Nil,
            ValidatorAddress::from_public_key(&pk),
        );
        let signed = signer.sign_proposal(proposal.clone()).await.expect("sign");
        assert!(proposal_signature_ok(&a, &proposal, &signed.signature, &pk));
        assert!(!proposal_signature_ok(
            &b,
            &proposal,
            &signed.signature,
            &pk
        ));
        let v = StepVerifier { chain: b };
        let r = v
            .verify_signed_proposal(&proposal, &signed.signature, &pk)
            .await
            .expect("verify");
        assert!(!r.is_valid());
    }
}
