//! `step validator register|stake|unbond|rotate-key|withdraw|unjail`: builds
//! a validator transaction, signs it with the operator's Ethereum key (from
//! a mode-0600 file, or `-` for stdin) over the chain of a genesis file, and
//! prints its JSON form. Blocks do not carry validator transactions yet
//! (ADR 0070), so there is no endpoint to submit it to and no `status`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use step_consensus::registry::{Operator, TxKind, ValidatorTx};
use step_engine::signing::{sign_digest, Key};
use step_io::genesis::{load_key, public_key, Genesis};
use step_io::keyfile::{load_p2p_key, read_secret};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The operator's secp256k1 secret key (64 hex, optional 0x): a file of
    /// mode 0600, or `-` to read it from stdin.
    #[arg(long)]
    operator_key: String,
    /// The chain's genesis file (the transaction signs over its chain).
    #[arg(long)]
    genesis: PathBuf,
    /// The operator's next nonce (0 for its first transaction).
    #[arg(long)]
    nonce: u64,
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Register a new validator with its node's keys and a stake.
    Register {
        /// The node's consensus key file (`validator_key.toml`).
        #[arg(long)]
        consensus_key_file: PathBuf,
        /// The node's P2P key file (`p2p_key.toml`).
        #[arg(long)]
        p2p_key_file: PathBuf,
        /// Stake in micro-STEP (100,000 STEP = 100000000000).
        #[arg(long)]
        stake_micro: u64,
    },
    /// Bond more stake.
    Stake {
        #[arg(long)]
        amount_micro: u64,
    },
    /// Begin unbonding (all of it: leave the set).
    Unbond {
        #[arg(long)]
        amount_micro: u64,
    },
    /// A new consensus (hot) key, in the set from the next epoch.
    RotateKey {
        #[arg(long)]
        consensus_key_file: PathBuf,
    },
    /// Matured unbonding stake and rewards to the operator's account.
    Withdraw,
    /// Back to active after the jail time.
    Unjail,
}

/// The operator's key from `source` (a file, or `-` for stdin).
fn operator_key(source: &str) -> anyhow::Result<Key> {
    let text = if source == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the operator key from stdin")?;
        s
    } else {
        read_secret(Path::new(source))?
    };
    let t = text.trim();
    let mut secret = [0u8; 32];
    hex::decode_to_slice(t.strip_prefix("0x").unwrap_or(t), &mut secret)
        .context("the operator key must be 64 hex digits (optionally 0x-prefixed)")?;
    Key::from_secret(secret).context("the operator key is not a valid secp256k1 secret key")
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = operator_key(&args.operator_key)?;
    let genesis = Genesis::load(&args.genesis)?;
    let chain = genesis.chain(&args.genesis)?;
    let consensus_key = |path: &Path| -> anyhow::Result<_> { Ok(public_key(&load_key(path)?)) };
    let kind = match args.what {
        What::Register {
            consensus_key_file,
            p2p_key_file,
            stake_micro,
        } => TxKind::Register {
            consensus_key: consensus_key(&consensus_key_file)?,
            p2p_id: load_p2p_key(&p2p_key_file)?.peer_id()?,
            stake_micro,
        },
        What::Stake { amount_micro } => TxKind::AddStake { amount_micro },
        What::Unbond { amount_micro } => TxKind::Unbond { amount_micro },
        What::RotateKey { consensus_key_file } => TxKind::RotateKey {
            consensus_key: consensus_key(&consensus_key_file)?,
        },
        What::Withdraw => TxKind::Withdraw,
        What::Unjail => TxKind::Unjail,
    };
    let mut tx = ValidatorTx {
        operator: Operator(key.address.0),
        nonce: args.nonce,
        kind,
        signature: [0; 65],
    };
    tx.signature = sign_digest(&key, tx.digest(&chain.0));
    tx.verify_signature(&chain.0)?;
    println!("{}", tx.to_json());
    Ok(ExitCode::SUCCESS)
}
