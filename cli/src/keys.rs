//! `step keys generate`: a validator's consensus key, its separate P2P
//! identity key, and its public identity; `step keys p2p`: a P2P key alone
//! (for a home made before validators had one).

use std::path::PathBuf;
use std::process::ExitCode;
use step_io::genesis::{generate_key, public_key, save_key, GenesisValidator};
use step_io::keyfile::{generate_p2p_key, save_p2p_key, P2P_KEY_FILE};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Write a new ed25519 consensus key and a new, separate P2P key (mode
    /// 0600; never overwrites) and print the `[[validators]]` entry to add
    /// to the genesis file.
    Generate {
        /// Where to write the consensus key.
        #[arg(long, default_value = "validator_key.toml")]
        out: PathBuf,
        /// Where to write the P2P key; default: `p2p_key.toml` beside `--out`.
        #[arg(long)]
        p2p_out: Option<PathBuf>,
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
    /// Write a new P2P identity key only (mode 0600; never overwrites) and
    /// print its libp2p peer id.
    P2p {
        #[arg(long, default_value = P2P_KEY_FILE)]
        out: PathBuf,
    },
}

/// Writes a new P2P key to `out`; returns its peer id.
fn write_p2p(out: &std::path::Path) -> anyhow::Result<String> {
    let key = generate_p2p_key()?;
    save_p2p_key(out, &key)?;
    let peer_id = key.peer_id()?;
    eprintln!("wrote {} (peer id {peer_id})", out.display());
    Ok(peer_id)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.what {
        What::Generate {
            out,
            p2p_out,
            name,
            power,
            p2p,
        } => {
            let p2p_out = p2p_out.unwrap_or_else(|| out.with_file_name(P2P_KEY_FILE));
            anyhow::ensure!(
                p2p_out != out,
                "--p2p-out must differ from --out: the P2P key is a key of its own"
            );
            let key = generate_key()?;
            save_key(&out, &key)?;
            eprintln!("wrote {}", out.display());
            let peer_id = write_p2p(&p2p_out)?;
            let mut entry = GenesisValidator::new(&name, &public_key(&key), power, &p2p, "");
            entry.p2p_id = peer_id;
            println!("[[validators]]");
            print!(
                "{}",
                toml::to_string(&entry).map_err(|e| anyhow::anyhow!("{e}"))?
            );
            Ok(ExitCode::SUCCESS)
        }
        What::P2p { out } => {
            println!("{}", write_p2p(&out)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
