//! Any string: the id parser never panics, and what it accepts round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use step_engine::triangle::{TriangleId, ID_MAX_LEN};

fuzz_target!(|s: &str| {
    if let Ok(id) = TriangleId::parse(s) {
        let mut b = [0u8; ID_MAX_LEN];
        let n = id.write(&mut b);
        assert_eq!(&b[..n], s.as_bytes());
        let _ = step_engine::mesh::triangle_vertices(&id);
    }
});
