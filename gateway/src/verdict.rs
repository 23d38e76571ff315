//! What a system answered to `POST /proof/submit` (its verdict: ok, code,
//! reward) and what the gateway reads from the proof itself (its facts),
//! both from bytes, both bounded (the body is already limited in size).

use serde::Deserialize;
use step_engine::proof::decode_signature;

/// A system's verdict on one proof.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    pub ok: bool,
    /// The error code when `ok` is false.
    pub code: Option<String>,
    /// The reward in micro-STEP when `ok` is true.
    pub reward_micro: Option<u64>,
    /// Phase 3 accepted the proof but it was not final yet (202).
    pub pending: bool,
}

/// An answer that is not a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictError {
    #[error("status {status}: the body is not a JSON object")]
    NotJson { status: u16 },
    #[error("status {status}: no boolean `ok`")]
    NoOk { status: u16 },
    #[error("status {status}: `ok` is false but there is no string `code`")]
    NoCode { status: u16 },
    #[error("status {status}: reward {reward:?} is not a decimal with at most 6 places")]
    BadReward { status: u16, reward: String },
}

#[derive(Deserialize)]
struct Body {
    ok: Option<bool>,
    code: Option<String>,
    reward: Option<String>,
    status: Option<String>,
}

/// `"0.500000"` → 500000; at most 6 decimal places, no sign.
pub fn parse_reward_micro(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || frac.len() > 6
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut micro: u64 = int.parse::<u64>().ok()?.checked_mul(1_000_000)?;
    let mut scale = 100_000;
    for b in frac.bytes() {
        micro = micro.checked_add(u64::from(b - b'0') * scale)?;
        scale /= 10;
    }
    Some(micro)
}

impl Verdict {
    /// Reads a `POST /proof/submit` answer (either system's shape).
    pub fn parse(status: u16, body: &[u8]) -> Result<Verdict, VerdictError> {
        let b: Body = serde_json::from_slice(body).map_err(|_| VerdictError::NotJson { status })?;
        let ok = b.ok.ok_or(VerdictError::NoOk { status })?;
        if !ok {
            let code = b.code.ok_or(VerdictError::NoCode { status })?;
            return Ok(Verdict {
                ok,
                code: Some(code),
                reward_micro: None,
                pending: false,
            });
        }
        let reward_micro = match b.reward {
            Some(r) => {
                Some(parse_reward_micro(&r).ok_or(VerdictError::BadReward { status, reward: r })?)
            }
            None => None,
        };
        Ok(Verdict {
            ok,
            code: None,
            reward_micro,
            pending: b.status.as_deref() == Some("pending"),
        })
    }

    pub fn code_is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// The label of this verdict: `OK` or its code.
    pub fn label(&self) -> &str {
        if self.ok {
            "OK"
        } else {
            self.code.as_deref().unwrap_or("?")
        }
    }

    /// Same ok, code and (when both say) reward.
    pub fn same(&self, o: &Verdict) -> bool {
        self.ok == o.ok
            && self.code == o.code
            && match (self.reward_micro, o.reward_micro) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// What the gateway reads from a proof body to class a discrepancy. Every
/// field is optional: the body comes from a client and may be anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub account: Option<String>,
    pub nonce: Option<String>,
    pub triangle: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// The 65 signature bytes, when they decode.
    pub signature: Option<[u8; 65]>,
}

#[derive(Deserialize)]
struct RawProof {
    payload: Option<RawPayload>,
    signature: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPayload {
    account: Option<String>,
    nonce: Option<String>,
    triangle_id: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
}

impl Facts {
    /// The facts of a body; a body that is not a proof-shaped JSON object has none.
    pub fn of_body(body: &[u8]) -> Facts {
        let Ok(raw) = serde_json::from_slice::<RawProof>(body) else {
            return Facts::default();
        };
        let p = raw.payload;
        Facts {
            signature: raw
                .signature
                .as_deref()
                .and_then(|s| decode_signature(s).ok()),
            account: p.as_ref().and_then(|p| p.account.clone()),
            nonce: p.as_ref().and_then(|p| p.nonce.clone()),
            triangle: p.as_ref().and_then(|p| p.triangle_id.clone()),
            lat: p.as_ref().and_then(|p| p.lat),
            lon: p.as_ref().and_then(|p| p.lon),
        }
    }

    /// The proof id Phase 3 gives it: SHA-256 of the signature bytes, in hex.
    pub fn proof_id(&self) -> Option<String> {
        use sha2::{Digest, Sha256};
        self.signature.map(|s| hex::encode(Sha256::digest(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewards_are_read_exactly() {
        assert_eq!(parse_reward_micro("0.500000"), Some(500_000));
        assert_eq!(parse_reward_micro("1"), Some(1_000_000));
        assert_eq!(parse_reward_micro("0.000001"), Some(1));
        assert_eq!(parse_reward_micro("2.5"), Some(2_500_000));
        for bad in ["", ".5", "-1", "0.0000001", "1e3", "0x1", "1.2.3"] {
            assert_eq!(parse_reward_micro(bad), None, "{bad}");
        }
    }

    #[test]
    fn verdicts_of_both_systems_shapes() {
        let p2 = br#"{"ok":true,"reward":"0.500000","unit":"STEP","balance":"2"}"#;
        let v = Verdict::parse(200, p2).unwrap();
        assert!(v.ok && v.reward_micro == Some(500_000) && !v.pending);
        let p3 = br#"{"ok":true,"status":"pending","reward":"0.500000"}"#;
        let w = Verdict::parse(202, p3).unwrap();
        assert!(w.pending && v.same(&w));
        let e =
            Verdict::parse(409, br#"{"ok":false,"code":"NONCE_REPLAY","message":"x"}"#).unwrap();
        assert!(e.code_is("NONCE_REPLAY") && !e.same(&v));
        assert_eq!(
            Verdict::parse(502, b"<html>"),
            Err(VerdictError::NotJson { status: 502 })
        );
        assert_eq!(
            Verdict::parse(200, b"{}"),
            Err(VerdictError::NoOk { status: 200 })
        );
        assert_eq!(
            Verdict::parse(400, br#"{"ok":false}"#),
            Err(VerdictError::NoCode { status: 400 })
        );
        assert!(matches!(
            Verdict::parse(200, br#"{"ok":true,"reward":"lots"}"#),
            Err(VerdictError::BadReward { .. })
        ));
    }

    #[test]
    fn facts_of_hostile_bodies_are_empty_not_an_error() {
        for b in [
            &b""[..],
            b"[]",
            b"{\"payload\":7}",
            b"\xff\xfe",
            b"{\"signature\":\"0x12\"}",
        ] {
            let f = Facts::of_body(b);
            assert_eq!(f.account, None);
            assert_eq!(f.signature, None);
        }
    }
}
