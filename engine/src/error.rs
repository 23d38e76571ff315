//! Verdict codes and named rejection reasons.
//!
//! Every rejection carries a [`Reject`] value that names exactly what was wrong.
//! Each `Reject` maps to one wire [`Code`], which is what clients see (Phase 2's
//! codes and HTTP statuses, plus the few documented additions).

use crate::address::Address;

/// Wire error codes. The first nine are Phase 2's; the rest are additions,
/// documented in `docs/ERROR_CODES.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    InvalidPayload,
    LowGpsAccuracy,
    BadSignature,
    NonceReplay,
    OutOfBounds,
    TooFast,
    Moratorium,
    TriangleNotFound,
    InternalError,
    /// Addition: the body is larger than the configured limit (HTTP 413).
    PayloadTooLarge,
    /// Addition: the proof's timestamp is outside the configured age window.
    StaleProof,
    /// Addition: a bounded queue is full; retry later (HTTP 503).
    Overloaded,
}

impl Code {
    /// Every code, in declaration order.
    pub const ALL: [Code; 12] = [
        Code::InvalidPayload,
        Code::LowGpsAccuracy,
        Code::BadSignature,
        Code::NonceReplay,
        Code::OutOfBounds,
        Code::TooFast,
        Code::Moratorium,
        Code::TriangleNotFound,
        Code::InternalError,
        Code::PayloadTooLarge,
        Code::StaleProof,
        Code::Overloaded,
    ];

    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::InvalidPayload => "INVALID_PAYLOAD",
            Code::LowGpsAccuracy => "LOW_GPS_ACCURACY",
            Code::BadSignature => "BAD_SIGNATURE",
            Code::NonceReplay => "NONCE_REPLAY",
            Code::OutOfBounds => "OUT_OF_BOUNDS",
            Code::TooFast => "TOO_FAST",
            Code::Moratorium => "MORATORIUM",
            Code::TriangleNotFound => "TRIANGLE_NOT_FOUND",
            Code::InternalError => "INTERNAL_ERROR",
            Code::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Code::StaleProof => "STALE_PROOF",
            Code::Overloaded => "OVERLOADED",
        }
    }

    /// The HTTP status Phase 2 used for this code (or the documented one for additions).
    pub const fn http_status(self) -> u16 {
        match self {
            Code::InvalidPayload => 400,
            Code::LowGpsAccuracy => 422,
            Code::BadSignature => 401,
            Code::NonceReplay => 409,
            Code::OutOfBounds => 422,
            Code::TooFast => 422,
            Code::Moratorium => 422,
            Code::TriangleNotFound => 404,
            Code::InternalError => 500,
            Code::PayloadTooLarge => 413,
            Code::StaleProof => 422,
            Code::Overloaded => 503,
        }
    }

    /// Parses a wire code.
    pub fn from_str_code(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

crate::fmt_as_text!(Display for Code, as_str);

/// Which payload field a structural error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Payload,
    Signature,
    Version,
    Account,
    TriangleId,
    Lat,
    Lon,
    Accuracy,
    Timestamp,
    Nonce,
}

impl Field {
    pub const fn name(self) -> &'static str {
        match self {
            Field::Payload => "payload",
            Field::Signature => "signature",
            Field::Version => "version",
            Field::Account => "account",
            Field::TriangleId => "triangleId",
            Field::Lat => "lat",
            Field::Lon => "lon",
            Field::Accuracy => "accuracy",
            Field::Timestamp => "timestamp",
            Field::Nonce => "nonce",
        }
    }
}

crate::fmt_as_text!(Display for Field, name);

/// Why a signature string is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature must start with 0x")]
    MissingPrefix,
    #[error("signature must be 65 bytes (130 hex characters), got {hex_len} hex characters")]
    WrongLength { hex_len: usize },
    #[error("signature is not hexadecimal")]
    NotHex,
    #[error("v must be 27 or 28, got {v}")]
    BadV { v: u8 },
    #[error("s is above n/2 (malleable high-s signature)")]
    HighS,
    #[error("r or s is zero or not below the curve order")]
    ScalarOutOfRange,
    #[error("no public key can be recovered from this signature")]
    RecoveryFailed,
}

/// Why a triangle id is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TriangleIdError {
    #[error("triangle id must start with STEP-TRI-v1:")]
    BadPrefix,
    #[error("triangle id has the wrong length ({len} bytes)")]
    BadLength { len: usize },
    #[error("triangle face must be a letter A-T")]
    BadFace,
    #[error("triangle level must be 1-21")]
    BadLevel,
    #[error("triangle path must be 20 digits 0-3, zero-padded after level-1 digits")]
    BadPath,
    #[error("triangle id is not in canonical form")]
    BadSeparator,
    #[error("triangle checksum {found:?} does not match {expected:?}")]
    BadChecksum {
        found: [char; 3],
        expected: [char; 3],
    },
}

/// A named reason for rejecting a proof. [`Reject::code`] gives the wire code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Reject {
    #[error("body is {len} bytes; the limit is {max}")]
    BodyTooLarge { len: usize, max: usize },
    #[error("malformed JSON at line {line}, column {column}")]
    MalformedJson { line: usize, column: usize },
    #[error("body must be a JSON object")]
    NotAnObject,
    #[error("duplicate key `{field}`")]
    DuplicateKey { field: Field },
    #[error("missing field `{field}`")]
    MissingField { field: Field },
    #[error("field `{field}` has the wrong type or an out-of-range value")]
    InvalidField { field: Field },
    #[error("unsupported version (expected STEP-PROOF-v1)")]
    UnsupportedVersion,
    #[error("invalid triangle id: {0}")]
    TriangleId(#[from] TriangleIdError),
    #[error("accuracy {accuracy_m} m is outside (0, {max_m}] m")]
    LowAccuracy { accuracy_m: f64, max_m: f64 },
    #[error("proof timestamp is {age_ms} ms from now, outside the window")]
    Stale { age_ms: i64 },
    #[error("bad signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("signature recovers {recovered}, not the payload's account")]
    SignerMismatch { recovered: Address },
    #[error("point is not inside the claimed triangle")]
    OutOfBounds,
    #[error("nonce already used by this account")]
    NonceReplay,
    #[error("{speed_mps:.1} m/s since the previous proof exceeds {max_mps} m/s")]
    TooFast { speed_mps: f64, max_mps: f64 },
    #[error("timestamp is not after the account's previous accepted proof ({delta_ms} ms)")]
    NotAfterPrevious { delta_ms: i64 },
    #[error(
        "{delta_ms} ms since the previous accepted proof; the moratorium is {moratorium_ms} ms"
    )]
    Moratorium { delta_ms: i64, moratorium_ms: u64 },
    #[error("queue full; retry later")]
    Overloaded,
}

impl Reject {
    /// The wire code for this rejection.
    pub fn code(&self) -> Code {
        match self {
            Reject::BodyTooLarge { .. } => Code::PayloadTooLarge,
            Reject::MalformedJson { .. }
            | Reject::NotAnObject
            | Reject::DuplicateKey { .. }
            | Reject::MissingField { .. }
            | Reject::InvalidField { .. }
            | Reject::UnsupportedVersion
            | Reject::TriangleId(_) => Code::InvalidPayload,
            Reject::LowAccuracy { .. } => Code::LowGpsAccuracy,
            Reject::Stale { .. } => Code::StaleProof,
            Reject::Signature(_) | Reject::SignerMismatch { .. } => Code::BadSignature,
            Reject::OutOfBounds => Code::OutOfBounds,
            Reject::NonceReplay => Code::NonceReplay,
            Reject::TooFast { .. } | Reject::NotAfterPrevious { .. } => Code::TooFast,
            Reject::Moratorium { .. } => Code::Moratorium,
            Reject::Overloaded => Code::Overloaded,
        }
    }
}
