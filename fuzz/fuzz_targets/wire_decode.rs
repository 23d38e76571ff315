//! Any bytes as a batch, a block (with its attestations), a proposal part
//! (batches, gossip with the ingester's attestation, attestations) or an
//! attestation off the network: the
//! bounded decoders return a value or a named error, never panic, and what
//! decodes re-encodes byte for byte (one wire form, whole buffer consumed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use step_consensus::attest::Attestation;
use step_consensus::block::{decode_batch, decode_block};
use step_consensus::context::ProposalPart;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = decode_batch(data) {
        assert_eq!(borsh::to_vec(&b).expect("encode"), data);
        assert_eq!(b.encoded_len(), data.len());
        let _ = b.to_batch();
    }
    if let Ok(b) = decode_block(data) {
        assert_eq!(b.encode().expect("encode"), data);
        let _ = b.is_consistent();
    }
    if let Ok(p) = borsh::from_slice::<ProposalPart>(data) {
        assert_eq!(borsh::to_vec(&p).expect("encode"), data);
    }
    if let Ok(a) = borsh::from_slice::<Attestation>(data) {
        assert_eq!(borsh::to_vec(&a).expect("encode"), data);
    }
});
