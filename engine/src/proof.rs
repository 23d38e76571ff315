//! Strict, bounded, allocation-free parsing of `{payload, signature}` bodies.
//!
//! * The body is at most [`BODY_MAX_BYTES`]; every string has a bound.
//! * A known key that appears twice (top level or in `payload`) is rejected:
//!   different JSON parsers keep different copies, so the body is ambiguous.
//! * Numbers must be JSON numbers (finite by construction), lat ∈ [−90, 90],
//!   lon ∈ [−180, 180]. They are parsed with correct rounding, as `JSON.parse` does.
//! * Unknown fields are ignored, as Phase 2 does.
//!
//! Strings are borrowed from the body. Only a string containing a JSON escape
//! is unescaped, by `serde_json` into its scratch buffer and then into a fixed
//! inline slot.

use crate::address::{decode_hex, Address};
use crate::error::SignatureError;
use crate::triangle::TriangleId;

mod collect;

pub use collect::parse;

/// Largest accepted body, in bytes.
pub const BODY_MAX_BYTES: usize = 16 * 1024;
/// Longest accepted nonce, in bytes.
pub const NONCE_MAX_LEN: usize = 64;
/// The only supported `payload.version`.
pub const VERSION: &str = "STEP-PROOF-v1";
/// Longest string the parser keeps (the signature: `0x` + 130 hex).
const STR_MAX: usize = 132;

/// A parsed proof. Plain data, `Copy`, no heap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proof {
    pub account: Address,
    pub triangle: TriangleId,
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
    pub timestamp: Timestamp,
    pub nonce: Nonce,
    /// The decoded 65 signature bytes, or why they could not be decoded.
    /// A malformed signature is reported at the signature stage, after the
    /// accuracy check, as Phase 2 orders its checks.
    pub signature: Result<[u8; 65], SignatureError>,
}

/// Where `YYYY-MM-DDTHH:MM:SS.sssZ` has its fixed characters.
const ISO_SEPARATORS: [(usize, u8); 7] = [
    (4, b'-'),
    (7, b'-'),
    (10, b'T'),
    (13, b':'),
    (16, b':'),
    (19, b'.'),
    (23, b'Z'),
];

/// An ISO-8601 UTC timestamp with milliseconds, `YYYY-MM-DDTHH:MM:SS.sssZ`
/// (what JavaScript's `Date.prototype.toISOString` prints).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    unix_ms: i64,
    text: [u8; 24],
}

crate::fmt_as_text!(Debug for Timestamp, as_str);

impl Timestamp {
    pub fn unix_ms(&self) -> i64 {
        self.unix_ms
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text).unwrap_or("")
    }

    /// Parses the exact `toISOString` form, years 0000–9999.
    pub fn parse(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() != 24 {
            return None;
        }
        if ISO_SEPARATORS.iter().any(|&(i, c)| b[i] != c) {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            b[r].iter().try_fold(0i64, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
            })
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
        if !(1..=12).contains(&mo)
            || d < 1
            || d > days_in_month(y, mo)
            || h > 23
            || mi > 59
            || sec > 59
        {
            return None;
        }
        let days = days_from_civil(y, mo, d);
        let unix_ms = ((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms;
        let mut text = [0u8; 24];
        text.copy_from_slice(b);
        Some(Timestamp { unix_ms, text })
    }

    /// Formats unix milliseconds (years 0000–9999) the `toISOString` way.
    pub fn from_unix_ms(unix_ms: i64) -> Option<Timestamp> {
        let days = unix_ms.div_euclid(86_400_000);
        let rem = unix_ms.rem_euclid(86_400_000);
        let (y, mo, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            return None;
        }
        let (h, mi, s, ms) = (
            rem / 3_600_000,
            rem / 60_000 % 60,
            rem / 1000 % 60,
            rem % 1000,
        );
        let mut text = [0u8; 24];
        let mut put = |at: usize, v: i64, width: usize| {
            let mut v = v;
            for i in (0..width).rev() {
                text[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, y, 4);
        put(5, mo, 2);
        put(8, d, 2);
        put(11, h, 2);
        put(14, mi, 2);
        put(17, s, 2);
        put(20, ms, 3);
        for (i, c) in ISO_SEPARATORS {
            text[i] = c;
        }
        Some(Timestamp { unix_ms, text })
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A nonce: 1–64 bytes of UTF-8 without control characters. The bytes past
/// `len` are always zero, so the derived equality is equality of the text.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Nonce {
    len: u8,
    buf: [u8; NONCE_MAX_LEN],
}

crate::fmt_as_text!(Debug for Nonce, as_str);

/// Hashes the text only, not the zero padding: a nonce is usually far
/// shorter than `NONCE_MAX_LEN`, and the nonce set hashes one per proof.
impl std::hash::Hash for Nonce {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Nonce {
    pub fn parse(s: &str) -> Option<Nonce> {
        if s.is_empty() || s.len() > NONCE_MAX_LEN || s.chars().any(char::is_control) {
            return None;
        }
        let mut buf = [0u8; NONCE_MAX_LEN];
        buf[..s.len()].copy_from_slice(s.as_bytes());
        Some(Nonce {
            len: s.len() as u8,
            buf,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

/// Decodes `0x` + 130 hex characters. Policy checks (v, low s) come later.
pub fn decode_signature(s: &str) -> Result<[u8; 65], SignatureError> {
    let hex = s.strip_prefix("0x").ok_or(SignatureError::MissingPrefix)?;
    if hex.len() != 130 {
        return Err(SignatureError::WrongLength { hex_len: hex.len() });
    }
    let mut out = [0u8; 65];
    decode_hex(hex.as_bytes(), &mut out).ok_or(SignatureError::NotHex)?;
    Ok(out)
}
