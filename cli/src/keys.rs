//! `step keys generate`: a validator consensus key and its public identity.

use std::path::PathBuf;
use std::process::ExitCode;
use step_io::genesis::{generate_key, public_key, save_key, GenesisValidator};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Write a new ed25519 consensus key (mode 0600; never overwrites) and
    /// print the `[[validators]]` entry to add to the genesis file.
    Generate {
        /// Where to write the key.
        #[arg(long, default_value = "validator_key.toml")]
        out: PathBuf,
        /// The validator's name in the genesis file.
        #[arg(long, default_value = "validator")]
        name: String,
        /// Its voting power.
        #[arg(long, default_value_t = 1)]
        power: u64,
        /// Its libp2p address, e.g. /ip4/203.0.113.7/tcp/27100.
        #[arg(long, default_value = "")]
        p2p: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.what {
        What::Generate {
            out,
            name,
            power,
            p2p,
        } => {
            let key = generate_key()?;
            save_key(&out, &key)?;
            let entry = GenesisValidator::new(&name, &public_key(&key), power, &p2p, "");
            eprintln!("wrote {}", out.display());
            println!("[[validators]]");
            print!(
                "{}",
                toml::to_string(&entry).map_err(|e| anyhow::anyhow!("{e}"))?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
