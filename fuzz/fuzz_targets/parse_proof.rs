//! Any body: the parser and the whole verifier return a verdict, never panic,
//! and a parsed proof's canonical message always fits its buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use step_engine::message::MessageBuf;
use step_engine::{Backend, Limits, MemoryState, Verifier};

fuzz_target!(|body: &[u8]| {
    if let Ok(p) = step_engine::proof::parse(body) {
        let mut m = MessageBuf::default();
        m.build(&p);
        assert!(m.as_str().starts_with("STEP-PROOF-v1|account:0x"));
    }
    for &backend in Backend::all() {
        let v = Verifier::new(Limits::default(), backend);
        let _ = v.verify(body, 0, &mut MemoryState::new());
    }
});
