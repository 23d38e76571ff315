//! One record of the intake log: `len: u32 LE ‖ crc32(payload): u32 LE ‖
//! payload`, the payload one proof's wire bytes ([`WireProof::write`]).

use super::{HEADER_BYTES, PAYLOAD_MAX_BYTES};
use step_consensus::block::WireProof;
use step_engine::Proof;

/// Appends one record (header and payload) for `p` to `buf`.
pub fn encode_record(p: &Proof, buf: &mut Vec<u8>) -> Option<()> {
    let w = WireProof::of_proof(p)?;
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER_BYTES]);
    w.write(buf).ok()?;
    let payload = &buf[start + HEADER_BYTES..];
    let len = u32::try_from(payload.len()).ok()?;
    let crc = crc32fast::hash(payload);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Some(())
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
