//! The on-disk cache of prepared proofs:
//! `<dir>/<hash of seed, accounts, invalid ratio>.bin`, holding `MAGIC`,
//! the count (u64 LE), then per proof its kind (u8), id (32 bytes), body
//! length (u32 LE) and body. A file with at least as many proofs as a run
//! needs serves it (slot `i` does not depend on the count).

use super::prepare::{Kind, Params, Part, Prepared};
use super::LoadError;
use crate::parts::Parts;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"STEPLD01";

/// The cache file of `params` in `dir`.
pub fn cache_path(dir: &Path, params: &Params) -> PathBuf {
    dir.join(format!("{}.bin", params.cache_key()))
}

/// Writes `p` to `path` (via a temporary file and a rename).
pub fn save(path: &Path, p: &Prepared) -> Result<(), LoadError> {
    let io = |source| LoadError::Cache {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    f.write_all(MAGIC).map_err(io)?;
    f.write_all(&(p.len as u64).to_le_bytes()).map_err(io)?;
    for i in 0..p.len {
        let body = p.body(i);
        f.write_all(&[p.kind(i) as u8]).map_err(io)?;
        f.write_all(p.id(i)).map_err(io)?;
        f.write_all(&(body.len() as u32).to_le_bytes())
            .map_err(io)?;
        f.write_all(body).map_err(io)?;
    }
    f.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads the first `n` proofs of a cache file (streaming: no second copy of
/// the file in memory); `None` if it is missing, holds fewer, or is not a
/// well-formed cache file.
pub fn load(path: &Path, n: usize) -> Option<Prepared> {
    use std::io::Read;
    let mut f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).ok()?);
    let mut head = [0u8; 16];
    f.read_exact(&mut head).ok()?;
    if &head[..8] != MAGIC {
        return None;
    }
    let count = u64::from_le_bytes(head[8..].try_into().ok()?) as usize;
    if count < n {
        return None;
    }
    let file_len = std::fs::metadata(path).ok()?.len() as usize;
    let mut part = Part {
        bytes: Vec::with_capacity(file_len.min(n.saturating_mul(480))),
        ends: Vec::with_capacity(n),
        ids: Vec::with_capacity(n),
        kinds: Vec::with_capacity(n),
    };
    let mut rec = [0u8; 37];
    for _ in 0..n {
        f.read_exact(&mut rec).ok()?;
        let kind = Kind::from_u8(rec[0])?;
        let id: [u8; 32] = rec[1..33].try_into().ok()?;
        let len = u32::from_le_bytes(rec[33..37].try_into().ok()?) as usize;
        if len > step_engine::proof::BODY_MAX_BYTES {
            return None;
        }
        let at = part.bytes.len();
        part.bytes.resize(at + len, 0);
        f.read_exact(&mut part.bytes[at..]).ok()?;
        part.ends.push(part.bytes.len());
        part.ids.push(id);
        part.kinds.push(kind);
    }
    Some(Parts {
        parts: vec![part],
        chunk: n.max(1),
        len: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::prepare::sign_all;

    fn params(ppm: u64) -> Params {
        Params {
            seed: "cache-test".into(),
            accounts: 8,
            invalid_ppm: ppm,
        }
    }

    #[test]
    fn the_cache_round_trips_and_serves_shorter_runs() {
        let dir = std::env::temp_dir().join(format!("step-cache-test-{}", std::process::id()));
        let p = params(100_000);
        let set = sign_all(&p, 50, 2, &|_| {});
        let path = cache_path(&dir, &p);
        save(&path, &set).expect("save");
        let back = load(&path, 40).expect("load a prefix");
        assert_eq!(back.len(), 40);
        for i in 0..40 {
            assert_eq!(back.body(i), set.body(i));
            assert_eq!(back.id(i), set.id(i));
            assert_eq!(back.kind(i), set.kind(i));
        }
        assert!(load(&path, 51).is_none(), "too short a cache is not used");
        // A truncated or foreign file is not used either.
        let data = std::fs::read(&path).expect("read");
        std::fs::write(&path, &data[..data.len() - 10]).expect("write");
        assert!(load(&path, 50).is_none());
        assert!(load(&path, 49).is_some());
        std::fs::write(&path, b"not a cache file at all").expect("write");
        assert!(load(&path, 1).is_none());
        // A prefix is the same whatever the length signed.
        let shorter = sign_all(&p, 20, 1, &|_| {});
        assert_eq!(shorter.body(19), set.body(19));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
