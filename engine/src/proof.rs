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
use crate::error::{Field, Reject, SignatureError};
use crate::triangle::TriangleId;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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

/// An ISO-8601 UTC timestamp with milliseconds, `YYYY-MM-DDTHH:MM:SS.sssZ`
/// (what JavaScript's `Date.prototype.toISOString` prints).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    unix_ms: i64,
    text: [u8; 24],
}

impl std::fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
        let sep = [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (23, b'Z'),
        ];
        if sep.iter().any(|&(i, c)| b[i] != c) {
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
        for (i, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (23, b'Z'),
        ] {
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

impl std::fmt::Debug for Nonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// Parses a request body into a [`Proof`].
pub fn parse(body: &[u8]) -> Result<Proof, Reject> {
    if body.len() > BODY_MAX_BYTES {
        return Err(Reject::BodyTooLarge {
            len: body.len(),
            max: BODY_MAX_BYTES,
        });
    }
    // One slot per kept string (8 payload fields, then the signature), for
    // strings that contain a JSON escape: those cannot be borrowed from the
    // body, so they are unescaped into their slot. All others are borrowed.
    let mut payload = [[0u8; STR_MAX]; 8];
    let mut signature = [0u8; STR_MAX];
    let seed = TopSeed {
        payload: payload.each_mut().map(Some),
        signature: &mut signature,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let top = match seed.deserialize(&mut de).and_then(|t| de.end().map(|()| t)) {
        Ok(t) => t,
        Err(e) => {
            return Err(Reject::MalformedJson {
                line: e.line(),
                column: e.column(),
            })
        }
    };
    top.into_proof()
}

// ---------------------------------------------------------------------------
// Collection: the visitors never fail except on JSON syntax; problems are
// recorded and turned into a named `Reject` afterwards. Values are small
// (a borrowed `&str` or an `f64`), so nothing large is moved per field.
// ---------------------------------------------------------------------------

/// Scratch space for one unescaped string.
type Slot = [u8; STR_MAX];

/// A kept JSON scalar. `'a` is the shorter of the body's and the slots'
/// lifetimes.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    /// A string of at most `STR_MAX` bytes, borrowed from the body or, when
    /// it had an escape, from its slot.
    Str(&'a str),
    /// A longer string: only its length is kept.
    LongStr {
        len: usize,
    },
    Num(f64),
    Other,
}

/// Deserializes one scalar; an escaped string is unescaped into `slot`.
struct ScalarSeed<'a> {
    slot: &'a mut Slot,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for ScalarSeed<'a> {
    type Value = Scalar<'a>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'a>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for ScalarSeed<'a> {
    type Value = Scalar<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Other)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Num(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Num(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Num(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'a>, E> {
        Ok(if v.len() > STR_MAX {
            Scalar::LongStr { len: v.len() }
        } else {
            Scalar::Str(v)
        })
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'a>, E> {
        if v.len() > STR_MAX {
            return Ok(Scalar::LongStr { len: v.len() });
        }
        let slot: &'a mut Slot = self.slot;
        slot[..v.len()].copy_from_slice(v.as_bytes());
        // A prefix of a copy of a `&str` of the same length: valid UTF-8.
        Ok(std::str::from_utf8(&slot[..v.len()]).map_or(Scalar::Other, Scalar::Str))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'a>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'a>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

/// Recognises known keys without allocating.
#[derive(Clone, Copy, PartialEq)]
enum Key {
    Known(Field),
    Unknown,
}

struct KeySeed {
    payload_level: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        let k = if self.payload_level {
            match v {
                "version" => Key::Known(Field::Version),
                "account" => Key::Known(Field::Account),
                "triangleId" => Key::Known(Field::TriangleId),
                "lat" => Key::Known(Field::Lat),
                "lon" => Key::Known(Field::Lon),
                "accuracy" => Key::Known(Field::Accuracy),
                "timestamp" => Key::Known(Field::Timestamp),
                "nonce" => Key::Known(Field::Nonce),
                _ => Key::Unknown,
            }
        } else {
            match v {
                "payload" => Key::Known(Field::Payload),
                "signature" => Key::Known(Field::Signature),
                _ => Key::Unknown,
            }
        };
        Ok(k)
    }
}

/// The payload's fields in `Field` order (version … nonce).
const PAYLOAD_FIELDS: [Field; 8] = [
    Field::Version,
    Field::Account,
    Field::TriangleId,
    Field::Lat,
    Field::Lon,
    Field::Accuracy,
    Field::Timestamp,
    Field::Nonce,
];

fn payload_index(f: Field) -> usize {
    PAYLOAD_FIELDS.iter().position(|&x| x == f).unwrap_or(0)
}

#[derive(Clone, Copy)]
enum PayloadValue<'a> {
    Object {
        fields: [Option<Scalar<'a>>; 8],
        duplicate: Option<Field>,
    },
    NotObject,
}

/// Deserializes the payload; field *i*'s escaped string goes to `slots[i]`.
/// A slot is taken when its field is first seen; a second occurrence (a
/// duplicate key, rejected afterwards) is only checked for syntax.
struct PayloadSeed<'a> {
    slots: [Option<&'a mut Slot>; 8],
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for PayloadSeed<'a> {
    type Value = PayloadValue<'a>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<PayloadValue<'a>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for PayloadSeed<'a> {
    type Value = PayloadValue<'a>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the payload object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PayloadValue<'a>, A::Error> {
        let mut slots = self.slots;
        let mut fields: [Option<Scalar<'a>>; 8] = [None; 8];
        let mut duplicate = None;
        while let Some(key) = map.next_key_seed(KeySeed {
            payload_level: true,
        })? {
            match key {
                Key::Known(f) => {
                    let i = payload_index(f);
                    match slots[i].take() {
                        Some(slot) => fields[i] = Some(map.next_value_seed(ScalarSeed { slot })?),
                        None => {
                            // Parsed as the first one was, so that the same
                            // bytes fail the same way; then dropped.
                            let slot = &mut [0u8; STR_MAX];
                            map.next_value_seed(ScalarSeed { slot })?;
                            duplicate.get_or_insert(f);
                        }
                    }
                }
                Key::Unknown => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(PayloadValue::Object { fields, duplicate })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PayloadValue<'a>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(PayloadValue::NotObject)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<PayloadValue<'a>, E> {
        Ok(PayloadValue::NotObject)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<PayloadValue<'a>, E> {
        Ok(PayloadValue::NotObject)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<PayloadValue<'a>, E> {
        Ok(PayloadValue::NotObject)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<PayloadValue<'a>, E> {
        Ok(PayloadValue::NotObject)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<PayloadValue<'a>, E> {
        Ok(PayloadValue::NotObject)
    }
    fn visit_unit<E: de::Error>(self) -> Result<PayloadValue<'a>, E> {
        Ok(PayloadValue::NotObject)
    }
}

// Inline on purpose: one value per parse, on the stack (about 250 bytes).
#[allow(clippy::large_enum_variant)]
enum Top<'a> {
    Object {
        payload: Option<PayloadValue<'a>>,
        signature: Option<Scalar<'a>>,
        duplicate: Option<Field>,
    },
    NotObject,
}

struct TopSeed<'a> {
    payload: [Option<&'a mut Slot>; 8],
    signature: &'a mut Slot,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for TopSeed<'a> {
    type Value = Top<'a>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top<'a>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for TopSeed<'a> {
    type Value = Top<'a>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'a>, A::Error> {
        let mut payload_slots = Some(self.payload);
        let mut signature_slot = Some(self.signature);
        let (mut payload, mut signature, mut duplicate) = (None, None, None);
        while let Some(key) = map.next_key_seed(KeySeed {
            payload_level: false,
        })? {
            match key {
                Key::Known(Field::Payload) => match payload_slots.take() {
                    Some(slots) => payload = Some(map.next_value_seed(PayloadSeed { slots })?),
                    None => {
                        // As above: parsed like the first, then dropped.
                        let mut junk = [[0u8; STR_MAX]; 8];
                        let slots = junk.each_mut().map(Some);
                        map.next_value_seed(PayloadSeed { slots })?;
                        duplicate.get_or_insert(Field::Payload);
                    }
                },
                Key::Known(f) => match signature_slot.take() {
                    Some(slot) => signature = Some(map.next_value_seed(ScalarSeed { slot })?),
                    None => {
                        let slot = &mut [0u8; STR_MAX];
                        map.next_value_seed(ScalarSeed { slot })?;
                        duplicate.get_or_insert(f);
                    }
                },
                Key::Unknown => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Top::Object {
            payload,
            signature,
            duplicate,
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'a>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top::NotObject)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Top<'a>, E> {
        Ok(Top::NotObject)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Top<'a>, E> {
        Ok(Top::NotObject)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Top<'a>, E> {
        Ok(Top::NotObject)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Top<'a>, E> {
        Ok(Top::NotObject)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Top<'a>, E> {
        Ok(Top::NotObject)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Top<'a>, E> {
        Ok(Top::NotObject)
    }
}

fn string_field<'a>(v: Option<Scalar<'a>>, field: Field) -> Result<&'a str, Reject> {
    match v {
        None => Err(Reject::MissingField { field }),
        Some(Scalar::Str(s)) => Ok(s),
        Some(_) => Err(Reject::InvalidField { field }),
    }
}

fn number_field(v: Option<Scalar<'_>>, field: Field, min: f64, max: f64) -> Result<f64, Reject> {
    match v {
        None => Err(Reject::MissingField { field }),
        Some(Scalar::Num(x)) if x.is_finite() && (min..=max).contains(&x) => Ok(x),
        Some(_) => Err(Reject::InvalidField { field }),
    }
}

impl Top<'_> {
    fn into_proof(self) -> Result<Proof, Reject> {
        let (payload, signature, duplicate) = match self {
            Top::Object {
                payload,
                signature,
                duplicate,
            } => (payload, signature, duplicate),
            Top::NotObject => return Err(Reject::NotAnObject),
        };
        if let Some(field) = duplicate {
            return Err(Reject::DuplicateKey { field });
        }
        let (fields, dup) = match payload {
            None => {
                return Err(Reject::MissingField {
                    field: Field::Payload,
                })
            }
            Some(PayloadValue::NotObject) => {
                return Err(Reject::InvalidField {
                    field: Field::Payload,
                })
            }
            Some(PayloadValue::Object { fields, duplicate }) => (fields, duplicate),
        };
        if let Some(field) = dup {
            return Err(Reject::DuplicateKey { field });
        }
        let signature = match signature {
            None => {
                return Err(Reject::MissingField {
                    field: Field::Signature,
                })
            }
            Some(Scalar::Str(s)) => decode_signature(s),
            Some(Scalar::LongStr { len }) => Err(SignatureError::WrongLength {
                hex_len: len.saturating_sub(2),
            }),
            Some(_) => {
                return Err(Reject::InvalidField {
                    field: Field::Signature,
                })
            }
        };
        let [version, account, triangle, lat, lon, accuracy, timestamp, nonce] = fields;
        if string_field(version, Field::Version)? != VERSION {
            return Err(Reject::UnsupportedVersion);
        }
        let account =
            Address::parse(string_field(account, Field::Account)?).ok_or(Reject::InvalidField {
                field: Field::Account,
            })?;
        let triangle = TriangleId::parse(string_field(triangle, Field::TriangleId)?)?;
        let lat = number_field(lat, Field::Lat, -90.0, 90.0)?;
        let lon = number_field(lon, Field::Lon, -180.0, 180.0)?;
        let accuracy_m = number_field(accuracy, Field::Accuracy, f64::MIN, f64::MAX)?;
        let timestamp = Timestamp::parse(string_field(timestamp, Field::Timestamp)?).ok_or(
            Reject::InvalidField {
                field: Field::Timestamp,
            },
        )?;
        let nonce =
            Nonce::parse(string_field(nonce, Field::Nonce)?).ok_or(Reject::InvalidField {
                field: Field::Nonce,
            })?;
        Ok(Proof {
            account,
            triangle,
            lat,
            lon,
            accuracy_m,
            timestamp,
            nonce,
            signature,
        })
    }
}
