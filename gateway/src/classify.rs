//! Classes of a discrepancy between Phase 2's and Phase 3's verdicts on the
//! same proof. The intended ones are Phase 2's documented defects
//! (`../shared/PHASE2_REFERENCE.md`, "Defects of Phase 2") and what follows
//! from them; each is recognised from the proof itself, never from the codes
//! alone, so a Phase 3 fault that happens to give the same code is still
//! unexpected.

use crate::verdict::{Facts, Verdict};
use step_engine::mesh::{contains, triangle_vertices};
use step_engine::TriangleId;

/// s > n/2 starts here: n/2 (big-endian), the largest low s.
const HALF_N: [u8; 32] = [
    0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0x5D, 0x57, 0x6E, 0x73, 0x57, 0xA4, 0x50, 0x1D, 0xDF, 0xE9, 0x2F, 0x46, 0x68, 0x1B, 0x20, 0xA0,
];

/// A difference Phase 3 makes on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Intended {
    /// Defect 1: Phase 2 accepts a high-s signature; Phase 3 refuses it.
    HighS,
    /// Defect 2: Phase 2 accepts v = 0/1; Phase 3 only 27/28.
    VZeroOne,
    /// Defect 3: Phase 2 never checks a triangle id; Phase 3 refuses a bad one.
    UncheckedTriangleId,
    /// Defect 4: Phase 2's planar point-in-triangle disagrees with the
    /// great-circle triangle for this point.
    PlanarGeometry,
    /// Defect 5: Phase 2 keys replay and heuristics on the account as sent;
    /// this address has been seen in another letter case.
    LetterCase,
    /// An earlier intended difference left the two systems with different
    /// last proofs for this account, and this one differs only in its speed
    /// gate or moratorium.
    AfterIntended,
}

/// A difference that counts toward a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unexpected {
    /// ok or code differ, and no intended class explains it.
    Verdict,
    /// Both accepted with different rewards.
    Reward,
    /// Phase 3 gave no verdict (no validator answered, or not a verdict).
    Phase3NoAnswer,
}

impl Intended {
    pub const ALL: [Intended; 6] = [
        Intended::HighS,
        Intended::VZeroOne,
        Intended::UncheckedTriangleId,
        Intended::PlanarGeometry,
        Intended::LetterCase,
        Intended::AfterIntended,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Intended::HighS => "high_s",
            Intended::VZeroOne => "v_zero_one",
            Intended::UncheckedTriangleId => "unchecked_triangle_id",
            Intended::PlanarGeometry => "planar_geometry",
            Intended::LetterCase => "letter_case",
            Intended::AfterIntended => "after_intended",
        }
    }
}

impl Unexpected {
    pub const ALL: [Unexpected; 3] = [
        Unexpected::Verdict,
        Unexpected::Reward,
        Unexpected::Phase3NoAnswer,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Unexpected::Verdict => "verdict",
            Unexpected::Reward => "reward",
            Unexpected::Phase3NoAnswer => "phase3_no_answer",
        }
    }
}

/// The result of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Match,
    Intended(Intended),
    Unexpected(Unexpected),
}

impl Outcome {
    pub const fn class(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Intended(i) => i.as_str(),
            Outcome::Unexpected(u) => u.as_str(),
        }
    }
}

/// What the gateway remembers about the proof's account (see
/// [`crate::state::Memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountMemo {
    /// The address was sent in more than one letter case.
    pub mixed_case: bool,
    /// An earlier intended difference was accepted by one system only.
    pub diverged: bool,
}

/// Planar ray casting over the triangle's vertices as `[lon, lat]`, as
/// Phase 2's polygon library does.
pub fn planar_contains(id: &TriangleId, lat: f64, lon: f64) -> bool {
    let ring: Vec<(f64, f64)> = triangle_vertices(id)
        .iter()
        .map(|v| {
            let (la, lo) = v.to_lat_lon();
            (lo, la)
        })
        .collect();
    let mut inside = false;
    let mut j = ring.len() - 1;
    for i in 0..ring.len() {
        let ((xi, yi), (xj, yj)) = (ring[i], ring[j]);
        if (yi > lat) != (yj > lat) && lon < (xj - xi) * (lat - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

fn heuristic_or_ok(v: &Verdict) -> bool {
    v.ok || v.code_is("TOO_FAST") || v.code_is("MORATORIUM")
}

fn refused_signature_only_by_phase3(p2: &Verdict, p3: &Verdict) -> bool {
    p3.code_is("BAD_SIGNATURE") && !p2.code_is("BAD_SIGNATURE")
}

/// Classes a pair of verdicts on the proof `f` (Phase 3's `None`: it gave none).
pub fn classify(f: &Facts, memo: AccountMemo, p2: &Verdict, p3: Option<&Verdict>) -> Outcome {
    let Some(p3) = p3 else {
        return Outcome::Unexpected(Unexpected::Phase3NoAnswer);
    };
    if p2.same(p3) {
        return Outcome::Match;
    }
    if let Some(sig) = &f.signature {
        if refused_signature_only_by_phase3(p2, p3) {
            if sig[64] <= 1 {
                return Outcome::Intended(Intended::VZeroOne);
            }
            if sig[32..64] > HALF_N[..] {
                return Outcome::Intended(Intended::HighS);
            }
        }
    }
    if let Some(t) = &f.triangle {
        match TriangleId::parse(t) {
            Err(_) => {
                if p3.code_is("INVALID_PAYLOAD") && !p2.code_is("INVALID_PAYLOAD") {
                    return Outcome::Intended(Intended::UncheckedTriangleId);
                }
            }
            Ok(id) => {
                if let (Some(lat), Some(lon)) = (f.lat, f.lon) {
                    let oob_differs = p2.code_is("OUT_OF_BOUNDS") != p3.code_is("OUT_OF_BOUNDS");
                    if oob_differs && planar_contains(&id, lat, lon) != contains(&id, lat, lon) {
                        return Outcome::Intended(Intended::PlanarGeometry);
                    }
                }
            }
        }
    }
    if memo.mixed_case
        && p2.ok
        && (p3.code_is("NONCE_REPLAY") || p3.code_is("TOO_FAST") || p3.code_is("MORATORIUM"))
    {
        return Outcome::Intended(Intended::LetterCase);
    }
    if memo.diverged && heuristic_or_ok(p2) && heuristic_or_ok(p3) {
        return Outcome::Intended(Intended::AfterIntended);
    }
    if p2.ok && p3.ok {
        Outcome::Unexpected(Unexpected::Reward)
    } else {
        Outcome::Unexpected(Unexpected::Verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(micro: u64) -> Verdict {
        Verdict {
            ok: true,
            code: None,
            reward_micro: Some(micro),
            pending: false,
        }
    }

    fn no(code: &str) -> Verdict {
        Verdict {
            ok: false,
            code: Some(code.to_owned()),
            reward_micro: None,
            pending: false,
        }
    }

    fn facts(v: u8, s_high: bool) -> Facts {
        let mut sig = [0x11u8; 65];
        sig[32] = if s_high { 0xF0 } else { 0x10 };
        sig[64] = v;
        Facts {
            signature: Some(sig),
            ..Facts::default()
        }
    }

    const NONE: AccountMemo = AccountMemo {
        mixed_case: false,
        diverged: false,
    };

    #[test]
    fn signature_defects_are_intended_only_with_the_signature_that_shows_them() {
        let (p2, p3) = (ok(500_000), no("BAD_SIGNATURE"));
        assert_eq!(
            classify(&facts(1, false), NONE, &p2, Some(&p3)),
            Outcome::Intended(Intended::VZeroOne)
        );
        assert_eq!(
            classify(&facts(27, true), NONE, &p2, Some(&p3)),
            Outcome::Intended(Intended::HighS)
        );
        // A normal signature that Phase 3 refuses is a Phase 3 fault.
        assert_eq!(
            classify(&facts(27, false), NONE, &p2, Some(&p3)),
            Outcome::Unexpected(Unexpected::Verdict)
        );
        // Both refuse it: a match, whatever the signature.
        assert_eq!(
            classify(&facts(1, true), NONE, &p3, Some(&p3)),
            Outcome::Match
        );
    }

    #[test]
    fn triangle_and_geometry_defects_need_the_proof_to_show_them() {
        let bad = Facts {
            triangle: Some("STEP-TRI-v1:E10-01010131200000000000-4XY".to_owned()),
            ..Facts::default()
        };
        let p3 = no("INVALID_PAYLOAD");
        assert_eq!(
            classify(&bad, NONE, &ok(1), Some(&p3)),
            Outcome::Intended(Intended::UncheckedTriangleId)
        );
        // A valid id refused as INVALID_PAYLOAD is not Phase 2's defect.
        let good_id = step_testkit::triangle(5).to_string();
        let good = Facts {
            triangle: Some(good_id),
            ..Facts::default()
        };
        assert_eq!(
            classify(&good, NONE, &ok(1), Some(&p3)),
            Outcome::Unexpected(Unexpected::Verdict)
        );
        // A point both geometries put inside: an OUT_OF_BOUNDS from one side is a fault.
        let id = step_testkit::triangle(5);
        let (lat, lon) = step_engine::mesh::centroid_lat_lon(&id);
        assert!(planar_contains(&id, lat, lon) && contains(&id, lat, lon));
        let inside = Facts {
            triangle: Some(id.to_string()),
            lat: Some(lat),
            lon: Some(lon),
            ..Facts::default()
        };
        assert_eq!(
            classify(&inside, NONE, &no("OUT_OF_BOUNDS"), Some(&ok(1))),
            Outcome::Unexpected(Unexpected::Verdict)
        );
    }

    #[test]
    fn letter_case_and_its_consequences_need_the_memory() {
        let mixed = AccountMemo {
            mixed_case: true,
            diverged: false,
        };
        let diverged = AccountMemo {
            mixed_case: false,
            diverged: true,
        };
        let f = Facts::default();
        assert_eq!(
            classify(&f, mixed, &ok(1), Some(&no("NONCE_REPLAY"))),
            Outcome::Intended(Intended::LetterCase)
        );
        assert_eq!(
            classify(&f, NONE, &ok(1), Some(&no("NONCE_REPLAY"))),
            Outcome::Unexpected(Unexpected::Verdict)
        );
        assert_eq!(
            classify(&f, diverged, &no("TOO_FAST"), Some(&ok(1))),
            Outcome::Intended(Intended::AfterIntended)
        );
        // Not a heuristic: still a fault.
        assert_eq!(
            classify(&f, diverged, &ok(1), Some(&no("BAD_SIGNATURE"))),
            Outcome::Unexpected(Unexpected::Verdict)
        );
    }

    #[test]
    fn rewards_and_missing_answers_are_unexpected() {
        let f = Facts::default();
        assert_eq!(
            classify(&f, NONE, &ok(1), Some(&ok(2))),
            Outcome::Unexpected(Unexpected::Reward)
        );
        assert_eq!(
            classify(&f, NONE, &ok(1), None),
            Outcome::Unexpected(Unexpected::Phase3NoAnswer)
        );
    }
}
