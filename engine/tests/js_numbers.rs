//! JS `String(number)` printing against the 1,562 Node-generated vectors.

mod common;

use step_engine::jsnum::JsNumBuf;

#[test]
fn all_js_number_vectors_match() {
    let text = common::read_shared("js-number-vectors.tsv");
    let mut buf = JsNumBuf::new();
    let mut n = 0;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let (bits, want) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("line {}: no tab", i + 1));
        let x = f64::from_bits(u64::from_str_radix(bits, 16).expect("hex bits"));
        assert_eq!(buf.format(x), want, "line {}: bits {bits}", i + 1);
        n += 1;
    }
    assert_eq!(n, 1562, "expected all 1,562 vectors");
}
