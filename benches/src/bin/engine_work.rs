//! A fixed amount of engine work, for instruction counting under
//! `valgrind --tool=callgrind` (repeatable on a noisy machine, unlike time):
//!
//! ```sh
//! cargo build --release -p step-benches --bin engine_work
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/engine_work verify 2000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/engine_work bare 2000
//! ```
//!
//! Modes: `verify` (Verifier::check_stateless on the body bytes), `bare`
//! (libsecp256k1 recover + keccak + compare, digest precomputed), `none`
//! (set-up only, to subtract).

use step_engine::crypto::check_policy;
use step_engine::message::{eip191_digest, MessageBuf};
use step_engine::{proof, Limits, Verifier};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "verify".to_owned());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let bodies = step_benches::sample_bodies();
    let prepared: Vec<_> = bodies
        .iter()
        .map(|b| {
            let p = proof::parse(b).expect("sample parses");
            let mut m = MessageBuf::default();
            m.build(&p);
            let sig = check_policy(&p.signature.expect("decodes")).expect("policy");
            (eip191_digest(m.as_bytes()), sig, p.account.0)
        })
        .collect();
    let v = Verifier::new(Limits::default(), Default::default());
    let mut ok = 0usize;
    for i in 0..n {
        let k = i % bodies.len();
        ok += match mode.as_str() {
            "verify" => usize::from(v.check_stateless(&bodies[k], 0).is_ok()),
            "bare" => {
                let (d, s, a) = &prepared[k];
                usize::from(step_benches::bare_recover_and_compare(d, &s.rs, s.recid, a))
            }
            _ => 1,
        };
    }
    assert_eq!(ok, n, "every sample must verify");
    println!("{mode}: {n} ok");
}
