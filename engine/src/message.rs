//! The canonical STEP-PROOF-v1 message and its EIP-191 digest.
//!
//! `STEP-PROOF-v1|account:{lowercase}|triangle:{id}|lat:{lat}|lon:{lon}|acc:{accuracy}|ts:{timestamp}|nonce:{nonce}`
//! with numbers printed by JS `String(number)`, hashed as `personal_sign` does:
//! keccak256(`"\x19Ethereum Signed Message:\n" + byte length + message`).

use crate::jsnum::JsNumBuf;
use crate::proof::Proof;
use tiny_keccak::{Hasher, Keccak};

/// Upper bound of a canonical message's length given the parser's field limits.
pub const MESSAGE_MAX_LEN: usize = 320;

/// A fixed-capacity buffer that holds one canonical message.
#[derive(Clone)]
pub struct MessageBuf {
    buf: [u8; MESSAGE_MAX_LEN],
    len: usize,
}

impl std::fmt::Debug for MessageBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MessageBuf").field(&self.as_str()).finish()
    }
}

impl Default for MessageBuf {
    fn default() -> Self {
        Self {
            buf: [0; MESSAGE_MAX_LEN],
            len: 0,
        }
    }
}

impl MessageBuf {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII and valid UTF-8 slices of the input are ever pushed.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    fn push(&mut self, s: &[u8]) {
        // The parser bounds every field so that the sum fits; a debug assertion
        // guards that invariant, and release builds truncate rather than panic.
        debug_assert!(
            self.len + s.len() <= MESSAGE_MAX_LEN,
            "message bound violated"
        );
        let n = s.len().min(MESSAGE_MAX_LEN - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    /// Builds the canonical message of `p`, replacing the buffer's content.
    pub fn build(&mut self, p: &Proof) {
        self.len = 0;
        let mut num = JsNumBuf::new();
        let mut acct = [0u8; 42];
        p.account.write_lower(&mut acct);
        let mut tri = [0u8; crate::triangle::ID_MAX_LEN];
        let tri_len = p.triangle.write(&mut tri);
        self.push(b"STEP-PROOF-v1|account:");
        self.push(&acct);
        self.push(b"|triangle:");
        self.push(&tri[..tri_len]);
        self.push(b"|lat:");
        self.push(num.format(p.lat).as_bytes());
        self.push(b"|lon:");
        self.push(num.format(p.lon).as_bytes());
        self.push(b"|acc:");
        self.push(num.format(p.accuracy_m).as_bytes());
        self.push(b"|ts:");
        self.push(p.timestamp.as_bytes());
        self.push(b"|nonce:");
        self.push(p.nonce.as_bytes());
    }
}

/// keccak256 of `data`.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    let mut k = Keccak::v256();
    k.update(data);
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

/// The EIP-191 (`personal_sign`) digest of `message`.
pub fn eip191_digest(message: &[u8]) -> [u8; 32] {
    let mut k = Keccak::v256();
    k.update(b"\x19Ethereum Signed Message:\n");
    let mut digits = [0u8; 20];
    let mut n = message.len();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    k.update(&digits[i..]);
    k.update(message);
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip191_known_answer() {
        // personal_sign digest of "hello" (well-known value, e.g. from ethers' hashMessage).
        let d = eip191_digest(b"hello");
        assert_eq!(
            hex::encode(d),
            "50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750"
        );
    }
}
