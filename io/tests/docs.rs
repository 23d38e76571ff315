//! The documentation names every configuration key and every HTTP-only code.
#![allow(clippy::unwrap_used)]

use step_io::http::error::HttpCode;
use step_io::Config;

fn doc(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn error_codes_doc_lists_http_only_codes() {
    let text = doc("ERROR_CODES.md");
    for c in HttpCode::HTTP_ONLY {
        let row = format!("| `{}` *(added)* | {} |", c.as_str(), c.http_status());
        assert!(text.contains(&row), "docs/ERROR_CODES.md lacks {row:?}");
        // No HTTP-only code shadows an engine code.
        assert!(step_engine::Code::from_str_code(c.as_str()).is_none());
    }
}

#[test]
fn the_validator_guide_documents_every_key() {
    let guide = doc("VALIDATOR_GUIDE.md");
    for (path, env) in Config::keys() {
        let key = path.split_once('.').unwrap().1;
        assert!(
            guide.contains(&format!("`{key}`")) && guide.contains(&env),
            "docs/VALIDATOR_GUIDE.md does not document {path} ({env})"
        );
    }
}
