//! The LocalLedger's state and its block execution: pure, no threads, no
//! clock (the block time is an argument).
//!
//! A block holds one pre-validated batch. Executing it re-runs the engine's
//! stateful checks for every proof in order ([`Verifier::commit`] against this
//! chain's own [`MemoryState`]), then credits the reward, counts the nonce and
//! the triangle click. In a single process the pipeline's own state has seen
//! exactly the same proofs in the same order, so the re-check always agrees;
//! it is kept because it is what consensus execution does with batches from
//! other validators, and a disagreement must reject rather than double-credit.

use super::{AccountView, Final, FinalizedBlock, ProofId, ProofRecord, ProofStatus, TriangleView};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use step_engine::crypto::check_policy;
use step_engine::message::{eip191_digest, MessageBuf};
use step_engine::pipeline::Batch;
use step_engine::{Address, Checked, MemoryState, Proof, Reject, TriangleId, Verifier};

/// Domain separator of the LocalLedger's root chain.
const ROOT_DOMAIN: &[u8] = b"STEP-LOCAL-ROOT-v1\n";

#[derive(Debug, Default, Clone, Copy)]
struct Account {
    balance_micro: u64,
    proofs: u64,
    last_proof_ms: Option<i64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Triangle {
    clicks: u32,
    last_click_ms: Option<i64>,
}

/// What executing one proof of a block gave.
#[derive(Debug)]
pub(super) struct Outcome {
    pub id: Option<ProofId>,
    pub result: Result<Final, Reject>,
}

#[derive(Debug)]
pub(super) struct Chain {
    verifier: Verifier,
    state: MemoryState,
    height: u64,
    root: [u8; 32],
    accounts: HashMap<Address, Account>,
    triangles: HashMap<TriangleId, Triangle>,
    proofs: HashMap<ProofId, ProofRecord>,
}

impl Chain {
    pub fn new(verifier: Verifier) -> Chain {
        Chain {
            verifier,
            state: MemoryState::new(),
            height: 0,
            root: [0; 32],
            accounts: HashMap::new(),
            triangles: HashMap::new(),
            proofs: HashMap::new(),
        }
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    /// SHA-256 chain over (previous root, height, batch digest, executed
    /// proof ids). It commits to the sequence of executed blocks; it is not a
    /// Merkle root of the account state (consensus defines that).
    pub fn root(&self) -> [u8; 32] {
        self.root
    }

    pub fn proof(&self, id: &ProofId) -> Option<&ProofRecord> {
        self.proofs.get(id)
    }

    pub fn account(&self, address: &Address) -> AccountView {
        let a = self.accounts.get(address).copied().unwrap_or_default();
        AccountView {
            address: *address,
            balance_micro: a.balance_micro,
            proofs: a.proofs,
            last_proof_ms: a.last_proof_ms,
        }
    }

    pub fn triangle(&self, id: &TriangleId) -> TriangleView {
        let t = self.triangles.get(id).copied().unwrap_or_default();
        TriangleView {
            id: *id,
            clicks: t.clicks,
            last_click_ms: t.last_click_ms,
        }
    }

    /// Executes `batch` as block `height + 1` at `time_ms`.
    pub fn apply(&mut self, batch: &Batch, time_ms: i64) -> (FinalizedBlock, Vec<Outcome>) {
        let height = self.height + 1;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut ids = Vec::with_capacity(batch.len());
        let mut rejected = Vec::new();
        for (proof, pubkey) in batch.proofs.iter().zip(&batch.pubkeys) {
            let id = ProofId::of_proof(proof);
            let result = self.execute(proof, pubkey, id, height, time_ms);
            match (&result, id) {
                (Ok(_), Some(id)) => ids.push(id),
                (Err(r), Some(id)) => rejected.push((id, r.code().as_str())),
                (_, None) => {}
            }
            outcomes.push(Outcome { id, result });
        }
        let mut h = Sha256::new();
        h.update(ROOT_DOMAIN);
        h.update(self.root);
        h.update(height.to_be_bytes());
        h.update(batch.digest);
        for id in &ids {
            h.update(id.0);
        }
        self.root = h.finalize().into();
        self.height = height;
        let block = FinalizedBlock {
            height,
            time_ms,
            state_root: self.root,
            batches: vec![batch.digest],
            proof_ids: ids,
            rejected,
        };
        (block, outcomes)
    }

    fn execute(
        &mut self,
        proof: &Proof,
        pubkey: &[u8; 64],
        id: Option<ProofId>,
        height: u64,
        time_ms: i64,
    ) -> Result<Final, Reject> {
        let raw = proof.signature?;
        let signature = check_policy(&raw)?;
        let mut msg = MessageBuf::default();
        msg.build(proof);
        let checked = Checked {
            proof: *proof,
            digest: eip191_digest(msg.as_bytes()),
            signature,
            pubkey: *pubkey,
        };
        let accepted = self.verifier.commit(&checked, &mut self.state)?;
        let id = id.unwrap_or(ProofId::of_signature(&raw));
        let account = self.accounts.entry(proof.account).or_default();
        account.balance_micro = account.balance_micro.saturating_add(accepted.reward_micro);
        account.proofs += 1;
        account.last_proof_ms = Some(proof.timestamp.unix_ms());
        let balance_micro = account.balance_micro;
        let tri = self.triangles.entry(proof.triangle).or_default();
        tri.clicks = tri.clicks.saturating_add(1);
        tri.last_click_ms = Some(time_ms);
        let fin = Final {
            id,
            account: proof.account,
            triangle: proof.triangle,
            reward_micro: accepted.reward_micro,
            balance_micro,
            clicks: tri.clicks,
            height,
            time_ms,
        };
        self.proofs.insert(
            id,
            ProofRecord {
                id,
                proof: *proof,
                reward_micro: accepted.reward_micro,
                status: ProofStatus::Final(fin),
            },
        );
        Ok(fin)
    }
}
