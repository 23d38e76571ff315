//! `step-e2e run MANIFEST...`: runs scenarios, prints their reports; exit 1 if any failed.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("run") || args.len() < 2 {
        eprintln!("usage: step-e2e run MANIFEST.toml...");
        return ExitCode::from(2);
    }
    let mut ok = true;
    for path in &args[1..] {
        let report =
            step_e2e::Manifest::load(std::path::Path::new(path)).and_then(|m| step_e2e::run(&m));
        match report {
            Ok(r) => {
                println!("{r}");
                ok &= r.passed();
            }
            Err(e) => {
                eprintln!("{path}: {e:#}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
