//! One record of the intake log: `len: u32 LE ‖ crc32(payload): u32 LE ‖
//! payload`, the payload one proof's wire bytes ([`WireProof::write`]).

use super::{HEADER_BYTES, PAYLOAD_MAX_BYTES};
use step_consensus::block::WireProof;
use step_engine::Proof;

/// Why a proof cannot be written as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Only accepted proofs are logged, and they are signed.
    #[error("a proof without a signature cannot be logged")]
    Unsigned,
    #[error("a payload of {len} bytes does not fit the record header")]
    TooLong { len: usize },
}

/// Appends one record (header and payload) for `p` to `buf`; on an error
/// `buf` is as it was.
pub fn encode_record(p: &Proof, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    let w = WireProof::of_proof(p).ok_or(EncodeError::Unsigned)?;
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER_BYTES]);
    w.write(buf)
        .expect("writing into a Vec<u8> cannot fail (std::io::Write for Vec)");
    let payload = &buf[start + HEADER_BYTES..];
    let Ok(len) = u32::try_from(payload.len()) else {
        let len = payload.len();
        buf.truncate(start);
        return Err(EncodeError::TooLong { len });
    };
    let crc = crc32fast::hash(payload);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// One record read from `bytes` at `offset`: the proof and the next offset,
/// or why it is not a whole, intact record.
pub fn decode_record(bytes: &[u8], offset: usize) -> Result<(Proof, usize), &'static str> {
    let rest = &bytes[offset..];
    if rest.len() < HEADER_BYTES {
        return Err("truncated header");
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len == 0 || len > PAYLOAD_MAX_BYTES {
        return Err("bad length");
    }
    let Some(payload) = rest.get(HEADER_BYTES..HEADER_BYTES + len) else {
        return Err("truncated payload");
    };
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch");
    }
    let mut r = payload;
    let w = WireProof::read(&mut r, 0).map_err(|_| "payload is not a proof")?;
    if !r.is_empty() {
        return Err("trailing bytes in the payload");
    }
    Ok((w.to_proof(), offset + HEADER_BYTES + len))
}
