//! The wire form: round trips, bounds checked before allocating, every
//! truncation and random input refused with a named error, never a panic.

use super::*;

fn proof(k: u8) -> WireProof {
    WireProof {
        account: [k; 20],
        triangle: TriangleId::new(k % 20, &[1, 2, 3, k % 4]).expect("triangle"),
        lat_bits: (1.5f64 + f64::from(k)).to_bits(),
        lon_bits: (-2.25f64).to_bits(),
        accuracy_m_bits: 5.0f64.to_bits(),
        timestamp: Timestamp::from_unix_ms(1_767_225_600_000 + i64::from(k)).expect("timestamp"),
        nonce: Nonce::parse(&format!("nonce-{k}")).expect("nonce"),
        signature: [k; 65],
    }
}

fn batch(n: u8) -> WireBatch {
    WireBatch {
        proofs: (0..n).map(proof).collect(),
        pubkeys: (0..n).map(|k| [k; 64]).collect(),
        digest: [n; 32],
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn a_batch_round_trips_and_its_encoded_len_is_exact() {
    for n in [0, 1, 7] {
        let b = batch(n);
        let bytes = borsh::to_vec(&b).expect("encode");
        assert_eq!(bytes.len(), b.encoded_len(), "{n} proofs");
        assert_eq!(decode_batch(&bytes).expect("decode"), b);
        assert_eq!(WireBatch::from_batch(&b.to_batch().expect("batch")), Ok(b));
    }
}

/// The text fields travel as the strings the proof signed: the bytes are
/// those of the former `String` fields.
#[test]
fn text_fields_are_length_prefixed_strings_on_the_wire() {
    let p = proof(3);
    let bytes = borsh::to_vec(&WireBatch {
        proofs: vec![p],
        pubkeys: vec![],
        digest: [0; 32],
    })
    .expect("encode");
    let triangle = p.triangle.to_string();
    let mut expect = 1u32.to_le_bytes().to_vec();
    expect.extend_from_slice(&p.account);
    expect.extend_from_slice(&(triangle.len() as u32).to_le_bytes());
    expect.extend_from_slice(triangle.as_bytes());
    for bits in [p.lat_bits, p.lon_bits, p.accuracy_m_bits] {
        expect.extend_from_slice(&bits.to_le_bytes());
    }
    for s in [p.timestamp.as_str(), p.nonce.as_str()] {
        expect.extend_from_slice(&(s.len() as u32).to_le_bytes());
        expect.extend_from_slice(s.as_bytes());
    }
    expect.extend_from_slice(&p.signature);
    assert_eq!(&bytes[..expect.len()], expect.as_slice());
}

#[test]
fn counts_over_the_limit_are_refused_before_allocating() {
    let mut bytes = u32::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0; 8]);
    assert_eq!(
        decode_batch(&bytes),
        Err(WireError::TooManyProofs {
            proofs: u32::MAX as usize,
            max: MAX_PROOFS_PER_BATCH
        })
    );
    let mut bytes = 0u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&(MAX_PROOFS_PER_BATCH as u32 + 1).to_le_bytes());
    assert!(matches!(
        decode_batch(&bytes),
        Err(WireError::TooManyPubkeys { .. })
    ));
    let mut bytes = (MAX_BATCHES_PER_BLOCK as u32 + 1).to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0; 64]);
    assert_eq!(
        decode_block(&bytes),
        Err(WireError::TooManyBatches {
            what: "value",
            batches: MAX_BATCHES_PER_BLOCK + 1,
            max: MAX_BATCHES_PER_BLOCK
        })
    );
    let mut bytes = 0u32.to_le_bytes().to_vec(); // an empty value
    bytes.extend_from_slice(&[0; 32]); // its previous root
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_block(&bytes),
        Err(WireError::TooManyBatches { what: "block", .. })
    ));
}

#[test]
fn an_overlong_or_unparsable_field_is_named() {
    let mut bytes = 1u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0; 20]);
    bytes.extend_from_slice(&1_000u32.to_le_bytes());
    assert_eq!(
        decode_batch(&bytes),
        Err(WireError::FieldTooLong {
            index: 0,
            field: "triangle",
            len: 1_000,
            max: ID_MAX_LEN
        })
    );
    let mut bytes = 1u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0; 20]);
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(b"abc");
    assert_eq!(
        decode_batch(&bytes),
        Err(WireError::Field {
            index: 0,
            field: "triangle"
        })
    );
}

/// The previous height's state root travels in the block and the value id
/// commits to it: a block on another root is another value.
#[test]
fn the_previous_root_is_in_the_block_and_in_its_id() {
    let a = BlockData::on_root([7; 32], vec![batch(2)]);
    let b = BlockData::on_root([8; 32], vec![batch(2)]);
    assert_eq!(a.prev_root(), [7; 32]);
    assert_ne!(a.id(), b.id());
    assert_eq!(BlockData::new(vec![batch(2)]).prev_root(), [0; 32]);
    let decoded = decode_block(&a.encode().expect("encode")).expect("decode");
    assert_eq!(decoded.prev_root(), [7; 32]);
    assert_eq!(decoded.id(), a.id());
    // The root is the value's last 32 bytes, before the batches.
    let value = borsh::to_vec(&a.value).expect("value");
    assert_eq!(&value[value.len() - 32..], &[7; 32]);
}

#[test]
fn every_truncation_and_trailing_byte_is_refused() {
    let block = BlockData::on_root([5; 32], vec![batch(2), batch(3)]);
    let bytes = block.encode().expect("encode");
    assert_eq!(decode_block(&bytes).expect("decode"), block);
    assert_eq!(decode_block(&bytes).expect("decode").id(), block.id());
    for n in 0..bytes.len() {
        assert!(
            decode_block(&bytes[..n]).is_err(),
            "{n} of {} bytes",
            bytes.len()
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        decode_block(&long),
        Err(WireError::TrailingBytes {
            what: "block",
            left: 1
        })
    );
}

#[test]
fn random_and_mutated_bytes_never_panic_and_what_decodes_re_encodes_the_same() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let valid = BlockData::new(vec![batch(3)]).encode().expect("encode");
    for i in 0..20_000 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            let len = (rng.next() % 600) as usize;
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let mut b = valid.clone();
            for _ in 0..=(rng.next() % 4) {
                let at = (rng.next() as usize) % b.len();
                b[at] = rng.next() as u8;
            }
            b
        };
        if let Ok(block) = decode_block(&bytes) {
            assert_eq!(block.encode().expect("encode"), bytes, "case {i}");
        }
        if let Ok(b) = decode_batch(&bytes) {
            assert_eq!(borsh::to_vec(&b).expect("encode"), bytes, "case {i}");
        }
    }
}

#[test]
fn a_missing_signature_is_named() {
    let mut b = batch(2).to_batch().expect("batch");
    b.proofs[1].signature = Err(step_engine::error::SignatureError::NotHex);
    assert_eq!(
        WireBatch::from_batch(&b),
        Err(WireError::MissingSignature { index: 1 })
    );
}
