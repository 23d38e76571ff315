//! JavaScript `String(number)` printing, as the canonical message needs it.
//!
//! ECMAScript's Number::toString picks the shortest digits that round-trip and
//! lays them out with its own rules (`5`, `0.1`, `1e21`, `6e-9`). `ryu-js`
//! implements exactly that; the 1,562 vectors in
//! `shared/step-proof-v1/js-number-vectors.tsv` check it (see `tests/`).

/// A stack buffer that prints one number at a time without allocating.
#[derive(Default)]
pub struct JsNumBuf(ryu_js::Buffer);

impl std::fmt::Debug for JsNumBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsNumBuf")
    }
}

impl JsNumBuf {
    pub fn new() -> Self {
        Self(ryu_js::Buffer::new())
    }

    /// Prints `x` like JavaScript's `String(x)`, including `NaN`, `Infinity` and `-0` → `0`.
    pub fn format(&mut self, x: f64) -> &str {
        self.0.format(x)
    }
}

/// Prints `x` like JavaScript's `String(x)` into a new `String` (convenience, allocates).
pub fn js_string(x: f64) -> String {
    JsNumBuf::new().format(x).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_rules() {
        let cases: [(f64, &str); 12] = [
            (5.0, "5"),
            (-0.0, "0"),
            (0.1, "0.1"),
            (6e-9, "6e-9"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (0.000001, "0.000001"),
            (0.0000001, "1e-7"),
            (10.940000000000001, "10.940000000000001"),
            (-90.0, "-90"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        let mut b = JsNumBuf::new();
        for (x, want) in cases {
            assert_eq!(b.format(x), want, "{x:?}");
        }
    }
}
