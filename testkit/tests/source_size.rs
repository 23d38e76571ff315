//! Issue #12's rule: no source file over 600 lines, tests aside (a file that
//! passes ~600 lines wants splitting, ../shared/STYLE.md). Test code is a
//! `tests/` or `benches/` directory or a `*_tests.rs` / `tests.rs` module;
//! `vendor/` (upstream code) and build output are not ours.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

/// Directories never walked: build output, upstream code, tools' caches.
const SKIP_DIRS: &[&str] = &["target", "vendor", "node_modules", "corpus", "artifacts"];

fn is_test_code(rel: &Path) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with("_tests.rs")
        || name == "tests.rs"
        || rel
            .components()
            .any(|c| matches!(c.as_os_str().to_str(), Some("tests" | "benches")))
}

/// Every non-test `.rs` file below `root` with more than [`MAX_LINES`]
/// lines, with its count.
fn too_long(root: &Path) -> Vec<(PathBuf, usize)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !name.starts_with('.') && !SKIP_DIRS.contains(&name) {
                    dirs.push(path);
                }
                continue;
            }
            let rel = path.strip_prefix(root).unwrap();
            if name.ends_with(".rs") && !is_test_code(rel) {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let lines = text.lines().count();
                if lines > MAX_LINES {
                    out.push((rel.to_path_buf(), lines));
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn no_source_file_is_over_600_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(
        root.join("Cargo.toml").is_file() && root.join("engine/src/lib.rs").is_file(),
        "not the workspace root: {}",
        root.display()
    );
    let long = too_long(&root);
    assert!(
        long.is_empty(),
        "source files over {MAX_LINES} lines (split them): {long:?}"
    );
}

#[test]
fn the_check_finds_a_long_file_and_leaves_tests_aside() {
    let dir = std::env::temp_dir().join(format!("step-source-size-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["src", "tests", "target", "src/app"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let long = "fn f() {}\n".repeat(MAX_LINES + 1);
    for f in [
        "src/long.rs",
        "tests/long.rs",
        "target/long.rs",
        "src/app/machine_tests.rs",
    ] {
        std::fs::write(dir.join(f), &long).unwrap();
    }
    std::fs::write(dir.join("src/ok.rs"), "fn f() {}\n".repeat(MAX_LINES)).unwrap();
    let found = too_long(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found, [(PathBuf::from("src/long.rs"), MAX_LINES + 1)]);
}
