//! The `STEP-TRI-v1` triangle id codec.
//!
//! `STEP-TRI-v1:{A–T}{level}-{path}-{checksum}`: level 1–21 without leading
//! zeros; path = `level − 1` digits 0–3, right-padded with `0` to 20; checksum =
//! 3 base32 characters (A–Z2–7, big-endian) of
//! `(sha256(body)[0] << 7) | (sha256(body)[1] >> 1)` where body is
//! `{face}{level}-{20 digits}`. Only the canonical spelling is accepted, so
//! [`TriangleId::write`] reproduces the submitted text byte for byte.

use crate::error::TriangleIdError;
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "STEP-TRI-v1:";
/// Longest id: prefix (12) + face (1) + level (2) + "-" + 20 digits + "-" + checksum (3).
pub const ID_MAX_LEN: usize = 40;
pub const LEVEL_MAX: u8 = 21;
pub const FACES: u8 = 20;
const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A mesh triangle: an icosahedron face (0–19), a level (1–21) and a path of
/// `level − 1` child digits (0–3), the first digit in the lowest two bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TriangleId {
    face: u8,
    level: u8,
    path: u64,
    /// Cached checksum of the body, a function of the fields above (computed
    /// once at construction so that printing the id costs no hashing).
    checksum: [u8; 3],
}

impl std::fmt::Debug for TriangleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut b = [0u8; ID_MAX_LEN];
        let n = self.write(&mut b);
        f.write_str(std::str::from_utf8(&b[..n]).map_err(|_| std::fmt::Error)?)
    }
}

impl std::fmt::Display for TriangleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl TriangleId {
    /// Builds an id from parts; `None` if out of range.
    pub fn new(face: u8, digits: &[u8]) -> Option<TriangleId> {
        if face >= FACES || digits.len() > usize::from(LEVEL_MAX - 1) {
            return None;
        }
        let mut path = 0u64;
        for (i, &d) in digits.iter().enumerate() {
            if d > 3 {
                return None;
            }
            path |= u64::from(d) << (2 * i);
        }
        Some(TriangleId::with_checksum(
            face,
            digits.len() as u8 + 1,
            path,
        ))
    }

    fn with_checksum(face: u8, level: u8, path: u64) -> TriangleId {
        let mut t = TriangleId {
            face,
            level,
            path,
            checksum: [0; 3],
        };
        let mut body = [0u8; ID_MAX_LEN];
        let n = t.write_body(&mut body);
        t.checksum = checksum(&body[..n]);
        t
    }

    pub fn face(&self) -> u8 {
        self.face
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    /// The `i`-th path digit (0-based), for `i < level − 1`.
    pub fn digit(&self, i: usize) -> u8 {
        ((self.path >> (2 * i)) & 3) as u8
    }

    /// The path digits, first to last.
    pub fn digits(&self) -> impl Iterator<Item = u8> + '_ {
        (0..usize::from(self.level - 1)).map(|i| self.digit(i))
    }

    /// The `k`-th child (0–3) one level down; `None` at level 21.
    pub fn child(&self, k: u8) -> Option<TriangleId> {
        if self.level >= LEVEL_MAX || k > 3 {
            return None;
        }
        Some(TriangleId::with_checksum(
            self.face,
            self.level + 1,
            self.path | (u64::from(k) << (2 * (self.level - 1))),
        ))
    }

    /// The parent one level up; `None` at level 1.
    pub fn parent(&self) -> Option<TriangleId> {
        if self.level <= 1 {
            return None;
        }
        let shift = 2 * (self.level - 2);
        Some(TriangleId::with_checksum(
            self.face,
            self.level - 1,
            self.path & !(3u64 << shift),
        ))
    }

    /// Writes `{face}{level}-{20 digits}` and returns its length.
    fn write_body(&self, out: &mut [u8]) -> usize {
        let mut n = 0;
        out[n] = b'A' + self.face;
        n += 1;
        if self.level >= 10 {
            out[n] = b'0' + self.level / 10;
            n += 1;
        }
        out[n] = b'0' + self.level % 10;
        n += 1;
        out[n] = b'-';
        n += 1;
        for i in 0..20 {
            out[n] = if i < usize::from(self.level - 1) {
                b'0' + self.digit(i)
            } else {
                b'0'
            };
            n += 1;
        }
        n
    }

    /// Writes the full canonical id into `out` and returns its length.
    pub fn write(&self, out: &mut [u8; ID_MAX_LEN]) -> usize {
        out[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
        let start = PREFIX.len();
        let body_len = self.write_body(&mut out[start..]);
        let cs = self.checksum;
        let mut n = start + body_len;
        out[n] = b'-';
        n += 1;
        out[n..n + 3].copy_from_slice(&cs);
        n + 3
    }

    /// Parses a canonical id. Any deviation is an error.
    pub fn parse(s: &str) -> Result<TriangleId, TriangleIdError> {
        let b = s.as_bytes();
        if !(ID_MAX_LEN - 1..=ID_MAX_LEN).contains(&b.len()) {
            return Err(if b.starts_with(PREFIX.as_bytes()) {
                TriangleIdError::BadLength { len: b.len() }
            } else {
                TriangleIdError::BadPrefix
            });
        }
        let body_and_cs = b
            .strip_prefix(PREFIX.as_bytes())
            .ok_or(TriangleIdError::BadPrefix)?;
        let (body, cs) = body_and_cs.split_at(body_and_cs.len() - 4);
        if cs[0] != b'-' {
            return Err(TriangleIdError::BadSeparator);
        }
        let face = match body[0] {
            c @ b'A'..=b'T' => c - b'A',
            _ => return Err(TriangleIdError::BadFace),
        };
        let level_digits = &body[1..body.len() - 21];
        let level = match level_digits {
            [d @ b'1'..=b'9'] => d - b'0',
            [d1 @ b'1'..=b'9', d0 @ b'0'..=b'9'] => (d1 - b'0') * 10 + (d0 - b'0'),
            _ => return Err(TriangleIdError::BadLevel),
        };
        if !(1..=LEVEL_MAX).contains(&level) {
            return Err(TriangleIdError::BadLevel);
        }
        let rest = &body[body.len() - 21..];
        if rest[0] != b'-' {
            return Err(TriangleIdError::BadSeparator);
        }
        let mut path = 0u64;
        for (i, &c) in rest[1..].iter().enumerate() {
            let d = match c {
                b'0'..=b'3' => c - b'0',
                _ => return Err(TriangleIdError::BadPath),
            };
            if i >= usize::from(level - 1) {
                if d != 0 {
                    return Err(TriangleIdError::BadPath);
                }
            } else {
                path |= u64::from(d) << (2 * i);
            }
        }
        let expected = checksum(body);
        let found = [cs[1], cs[2], cs[3]];
        if found != expected {
            return Err(TriangleIdError::BadChecksum {
                found: found.map(char::from),
                expected: expected.map(char::from),
            });
        }
        Ok(TriangleId {
            face,
            level,
            path,
            checksum: expected,
        })
    }
}

/// The 3-character base32 checksum of a body.
pub fn checksum(body: &[u8]) -> [u8; 3] {
    let h = Sha256::digest(body);
    let v = (u32::from(h[0]) << 7) | (u32::from(h[1]) >> 1);
    [
        B32[(v >> 10) as usize & 31],
        B32[(v >> 5) as usize & 31],
        B32[v as usize & 31],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_checksums() {
        assert_eq!(&checksum(b"A10-00000000000000000000"), b"UPB");
        assert_eq!(&checksum(b"P1-00000000000000000000"), b"CPN");
    }

    #[test]
    fn parses_sample_ids() {
        let t = TriangleId::parse("STEP-TRI-v1:E10-01010131200000000000-4XX").unwrap();
        assert_eq!((t.face(), t.level()), (4, 10));
        assert_eq!(
            t.digits().collect::<Vec<_>>(),
            vec![0, 1, 0, 1, 0, 1, 3, 1, 2]
        );
        assert_eq!(t.to_string(), "STEP-TRI-v1:E10-01010131200000000000-4XX");
    }

    #[test]
    fn rejects_non_canonical() {
        use TriangleIdError::*;
        let bad = [
            ("STEP-TRI-v1:E10-01010131200000000000-4XY", "checksum"),
            ("STEP-TRI-v1:U1-00000000000000000000-AAA", "face"),
            ("STEP-TRI-v1:A0-00000000000000000000-AAA", "level0"),
            ("STEP-TRI-v1:A22-00000000000000000000-AAA", "level22"),
            ("STEP-TRI-v1:A01-00000000000000000000-AAA", "leading zero"),
            ("STEP-TRI-v1:A1-10000000000000000000-AAA", "nonzero padding"),
            ("STEP-TRI-v1:A2-40000000000000000000-AAA", "digit 4"),
            ("STEP-TRI-v2:A1-00000000000000000000-CPN", "prefix"),
            ("STEP-TRI-v1:A1_00000000000000000000-CPN", "separator"),
            ("", "empty"),
        ];
        for (s, why) in bad {
            let e = TriangleId::parse(s).expect_err(why);
            if why == "checksum" {
                assert!(matches!(e, BadChecksum { .. }));
            }
        }
    }
}
