//! Secret key files on disk: the consensus key (`validator_key.toml`,
//! `secret_key`) and the separate libp2p identity key (`p2p_key.toml`,
//! `p2p_secret_key`). Both are written with mode 0600 and never overwritten;
//! a key file that the group or others may read is refused at load, naming
//! the file and the `chmod 600` that fixes it.

use crate::genesis::GenesisError;
use serde::{Deserialize, Serialize};
use std::path::Path;
use step_consensus::P2pKey;

/// The default P2P key file name, beside the consensus key.
pub const P2P_KEY_FILE: &str = "p2p_key.toml";

/// A validator's secret libp2p key on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pKeyFile {
    pub p2p_secret_key: String,
}

/// 32 bytes from the operating system's random source.
pub fn random_32() -> Result<[u8; 32], GenesisError> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| GenesisError::Random(e.to_string()))?;
    Ok(b)
}

/// A fresh P2P key.
pub fn generate_p2p_key() -> Result<P2pKey, GenesisError> {
    Ok(P2pKey::from_bytes(random_32()?))
}

/// Writes `text` to a new file `path` with mode 0600 (an existing file is
/// an error, so a key is never overwritten) and syncs it.
pub fn write_secret(path: &Path, text: &str) -> Result<(), GenesisError> {
    use std::io::Write;
    let werr = |source| GenesisError::Write {
        path: path.to_owned(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(werr)?;
    f.write_all(text.as_bytes()).map_err(werr)?;
    f.sync_all().map_err(werr)
}

/// Reads a secret key file, refusing one the group or others may read.
pub fn read_secret(path: &Path) -> Result<String, GenesisError> {
    let rerr = |source| GenesisError::Read {
        path: path.to_owned(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(rerr)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(GenesisError::KeyReadableByOthers {
                path: path.to_owned(),
                mode,
            });
        }
    }
    std::fs::read_to_string(path).map_err(rerr)
}

/// Writes `key` to a new file `path` (mode 0600).
pub fn save_p2p_key(path: &Path, key: &P2pKey) -> Result<(), GenesisError> {
    write_secret(
        path,
        &format!(
            "# STEP validator P2P identity key (ed25519, libp2p). Keep it secret.\np2p_secret_key = \"{}\"\n",
            hex::encode(key.as_bytes())
        ),
    )
}

/// Reads a P2P key file.
pub fn load_p2p_key(path: &Path) -> Result<P2pKey, GenesisError> {
    let kf: P2pKeyFile =
        toml::from_str(&read_secret(path)?).map_err(|source| GenesisError::Toml {
            path: path.to_owned(),
            source,
        })?;
    let b =
        crate::genesis::unhex::<32>(&kf.p2p_secret_key).ok_or_else(|| GenesisError::BadField {
            path: path.to_owned(),
            field: "p2p_secret_key".into(),
            expected: "64 hex digits",
        })?;
    Ok(P2pKey::from_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{generate_key, load_key, save_key};

    #[test]
    fn both_keys_round_trip_and_differ() {
        let dir = tempfile::tempdir().unwrap();
        let (kp, pp) = (dir.path().join("k.toml"), dir.path().join("p.toml"));
        let k = generate_key().unwrap();
        let p = generate_p2p_key().unwrap();
        save_key(&kp, &k).unwrap();
        save_p2p_key(&pp, &p).unwrap();
        assert_eq!(load_key(&kp).unwrap().as_bytes(), k.as_bytes());
        assert_eq!(load_p2p_key(&pp).unwrap(), p);
        assert_ne!(p.as_bytes(), k.as_bytes());
        // Never overwritten.
        assert!(matches!(
            save_p2p_key(&pp, &p),
            Err(GenesisError::Write { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_may_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (kp, pp) = (dir.path().join("k.toml"), dir.path().join("p.toml"));
        save_key(&kp, &generate_key().unwrap()).unwrap();
        save_p2p_key(&pp, &generate_p2p_key().unwrap()).unwrap();
        for (path, mode) in [(&kp, 0o644), (&pp, 0o640)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let e = load_key(&kp).unwrap_err();
        assert!(
            matches!(&e, GenesisError::KeyReadableByOthers { path, mode: 0o644 } if path == &kp),
            "{e}"
        );
        assert!(e
            .to_string()
            .contains(&format!("chmod 600 {}", kp.display())));
        let e = load_p2p_key(&pp).unwrap_err();
        assert!(
            matches!(e, GenesisError::KeyReadableByOthers { mode: 0o640, .. }),
            "{e}"
        );
        std::fs::set_permissions(&pp, std::fs::Permissions::from_mode(0o600)).unwrap();
        load_p2p_key(&pp).unwrap();
    }
}
