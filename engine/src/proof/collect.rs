//! The body parser: serde visitors that collect a proof's fields into
//! borrowed strings and fixed slots, then [`Top::into_proof`] names the first
//! problem. See the parent module for the rules.

use super::{Nonce, Proof, Timestamp, BODY_MAX_BYTES, STR_MAX, VERSION};
use crate::address::Address;
use crate::error::{Field, Reject, SignatureError};
use crate::triangle::TriangleId;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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

/// `Seed` deserializes through itself as the visitor (`deserialize_any`).
macro_rules! seed_is_its_visitor {
    ($seed:ident => $value:ident) => {
        impl<'de: 'a, 'a> DeserializeSeed<'de> for $seed<'a> {
            type Value = $value<'a>;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<$value<'a>, D::Error> {
                d.deserialize_any(self)
            }
        }
    };
}

/// The visitor arms for every JSON value that is not an object: an array is
/// drained, a scalar ignored, and either yields `$not` (rejected afterwards).
macro_rules! not_an_object {
    ($value:ty, $not:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($not)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$value, E> {
            Ok($not)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$value, E> {
            Ok($not)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$value, E> {
            Ok($not)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$value, E> {
            Ok($not)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<$value, E> {
            Ok($not)
        }
        fn visit_unit<E: de::Error>(self) -> Result<$value, E> {
            Ok($not)
        }
    };
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

seed_is_its_visitor!(ScalarSeed => Scalar);

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

seed_is_its_visitor!(PayloadSeed => PayloadValue);

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
                    scalar_once(&mut map, slots[i].take(), f, &mut fields[i], &mut duplicate)?;
                }
                Key::Unknown => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(PayloadValue::Object { fields, duplicate })
    }
    not_an_object!(PayloadValue<'a>, PayloadValue::NotObject);
}

/// A scalar field's value: into `slot` (and `value`) when the field is first
/// seen. A repeat (`slot` already taken: a duplicate key, rejected
/// afterwards) is parsed as the first one was, so that the same bytes fail
/// the same way, then dropped; the first repeated field is kept in `duplicate`.
fn scalar_once<'de: 'a, 'a, A: MapAccess<'de>>(
    map: &mut A,
    slot: Option<&'a mut Slot>,
    field: Field,
    value: &mut Option<Scalar<'a>>,
    duplicate: &mut Option<Field>,
) -> Result<(), A::Error> {
    match slot {
        Some(slot) => *value = Some(map.next_value_seed(ScalarSeed { slot })?),
        None => {
            let slot = &mut [0u8; STR_MAX];
            map.next_value_seed(ScalarSeed { slot })?;
            duplicate.get_or_insert(field);
        }
    }
    Ok(())
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

seed_is_its_visitor!(TopSeed => Top);

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
                        // As `scalar_once` does: parsed like the first, then dropped.
                        let mut junk = [[0u8; STR_MAX]; 8];
                        let slots = junk.each_mut().map(Some);
                        map.next_value_seed(PayloadSeed { slots })?;
                        duplicate.get_or_insert(Field::Payload);
                    }
                },
                Key::Known(f) => {
                    let slot = signature_slot.take();
                    scalar_once(&mut map, slot, f, &mut signature, &mut duplicate)?;
                }
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
    not_an_object!(Top<'a>, Top::NotObject);
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
            Some(Scalar::Str(s)) => super::decode_signature(s),
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
