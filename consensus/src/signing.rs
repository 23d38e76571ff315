//! ed25519 signing of votes, proposals and the validator proof, with a
//! domain tag per message kind (`docs/adr/0020-malachite.md`).
//!
//! Preimage = tag ‖ borsh(message). Vote extensions are disabled in STEP;
//! their signature covers the tag alone.

use async_trait::async_trait;
use borsh::BorshSerialize;
use malachitebft_core_types::{SignedMessage, ValidatorProof, VoteExtensionScope};
use malachitebft_signing::{Error, Signer, VerificationResult, Verifier};

use crate::context::{PrivateKey, Proposal, PublicKey, Signature, StepContext, Vote};

pub const VOTE_TAG: &[u8] = b"STEP-VOTE-v1\n";
pub const PROPOSAL_TAG: &[u8] = b"STEP-PROPOSAL-v1\n";
pub const EXTENSION_TAG: &[u8] = b"STEP-EXTENSION-v1\n";

fn preimage<T: BorshSerialize>(tag: &[u8], msg: &T) -> Vec<u8> {
    let mut out = tag.to_vec();
    // Writing to a Vec cannot fail.
    let _ = msg.serialize(&mut out);
    out
}

fn vote_preimage(v: &Vote) -> Vec<u8> {
    let mut v = v.clone();
    v.extension = None;
    preimage(VOTE_TAG, &v)
}

fn check(pk: &PublicKey, msg: &[u8], sig: &Signature) -> VerificationResult {
    let ok = ed25519_consensus::VerificationKey::try_from(pk.0)
        .and_then(|vk| vk.verify(&ed25519_consensus::Signature::from(sig.0), msg))
        .is_ok();
    VerificationResult::from_bool(ok)
}

/// True when `sig` is `pk`'s signature of `vote` (extension excluded).
pub fn vote_signature_ok(vote: &Vote, sig: &Signature, pk: &PublicKey) -> bool {
    check(pk, &vote_preimage(vote), sig).is_valid()
}

/// True when `sig` is `pk`'s signature of `proposal`.
pub fn proposal_signature_ok(proposal: &Proposal, sig: &Signature, pk: &PublicKey) -> bool {
    check(pk, &preimage(PROPOSAL_TAG, proposal), sig).is_valid()
}

/// Signs with one validator's private key.
#[derive(Clone)]
pub struct StepSigner {
    key: PrivateKey,
}

impl std::fmt::Debug for StepSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepSigner")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl StepSigner {
    pub fn new(key: PrivateKey) -> Self {
        StepSigner { key }
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
        let s = self.sign(&vote_preimage(&vote));
        Ok(SignedMessage::new(vote, s))
    }

    async fn sign_proposal(
        &self,
        p: Proposal,
    ) -> Result<SignedMessage<StepContext, Proposal>, Error> {
        let s = self.sign(&preimage(PROPOSAL_TAG, &p));
        Ok(SignedMessage::new(p, s))
    }

    async fn sign_vote_extension(
        &self,
        _scope: VoteExtensionScope<StepContext>,
        ext: (),
    ) -> Result<SignedMessage<StepContext, ()>, Error> {
        Ok(SignedMessage::new(ext, self.sign(EXTENSION_TAG)))
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
pub struct StepVerifier;

#[async_trait]
impl Verifier<StepContext> for StepVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        sig: &Signature,
        pk: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Ok(check(pk, &vote_preimage(vote), sig))
    }

    async fn verify_signed_proposal(
        &self,
        p: &Proposal,
        sig: &Signature,
        pk: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Ok(check(pk, &preimage(PROPOSAL_TAG, p), sig))
    }

    async fn verify_signed_vote_extension(
        &self,
        _scope: &VoteExtensionScope<StepContext>,
        _ext: &(),
        sig: &Signature,
        pk: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Ok(check(pk, EXTENSION_TAG, sig))
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
