//! Property tests: the id codec round-trips, and no input makes the engine panic.

use proptest::prelude::*;
use step_engine::triangle::{TriangleId, ID_MAX_LEN};
use step_engine::{Limits, MemoryState, Verifier};

fn arb_id() -> impl Strategy<Value = TriangleId> {
    (0u8..20, prop::collection::vec(0u8..4, 0..21))
        .prop_map(|(f, d)| TriangleId::new(f, &d).expect("valid"))
}

fn text(id: &TriangleId) -> String {
    let mut b = [0u8; ID_MAX_LEN];
    let n = id.write(&mut b);
    String::from_utf8(b[..n].to_vec()).expect("ascii")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn id_round_trips(id in arb_id()) {
        let s = text(&id);
        prop_assert_eq!(TriangleId::parse(&s), Ok(id));
        if let Some(p) = id.parent() {
            prop_assert_eq!(p.child(id.digit(usize::from(id.level()) - 2)), Some(id));
        }
    }

    /// Any one-character change gives an error or, by checksum collision, a different id.
    #[test]
    fn mutations_never_parse_as_the_same_id(id in arb_id(), pos in 0usize..ID_MAX_LEN, c in 0x20u8..0x7f) {
        let s = text(&id);
        prop_assume!(pos < s.len() && s.as_bytes()[pos] != c);
        let mut b = s.into_bytes();
        b[pos] = c;
        let m = String::from_utf8(b).expect("ascii");
        prop_assert_ne!(TriangleId::parse(&m), Ok(id));
    }

    /// Changing a checksum character is always caught.
    #[test]
    fn checksum_changes_are_caught(id in arb_id(), k in 1usize..4, c in prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".to_vec())) {
        let s = text(&id);
        let pos = s.len() - k;
        prop_assume!(s.as_bytes()[pos] != c);
        let mut b = s.into_bytes();
        b[pos] = c;
        prop_assert!(TriangleId::parse(&String::from_utf8(b).expect("ascii")).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let v = Verifier::new(Limits::default(), Default::default());
        let _ = v.verify(&body, 0, &mut MemoryState::new());
    }

    #[test]
    fn arbitrary_strings_never_panic_the_id_parser(s in ".{0,48}") {
        let _ = TriangleId::parse(&s);
    }

    /// Mutated valid bodies (byte flips, truncation, insertion) never panic.
    #[test]
    fn mutated_sample_never_panics(line in 0usize..100, ops in prop::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 1..8)) {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/step-proof-v1/sample-valid.jsonl"))
            .unwrap_or_default();
        let mut body = text.lines().nth(line).unwrap_or("{}").as_bytes().to_vec();
        for (at, byte, op) in ops {
            let i = usize::from(at) % (body.len() + 1);
            match op {
                0 if i < body.len() => body[i] = byte,
                1 => body.truncate(i),
                _ => body.insert(i, byte),
            }
        }
        let v = Verifier::new(Limits::default(), Default::default());
        let _ = v.verify(&body, 0, &mut MemoryState::new());
    }
}
