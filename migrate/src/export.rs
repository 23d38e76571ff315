//! Reading a `mongoexport` directory: `accounts.json`, `triangles.json`,
//! `triangle_events.json`, each either one document per line (mongoexport's
//! default) or one JSON array (`--jsonArray`), in Extended JSON v2, relaxed
//! (`{"$date":"2026-01-01T00:00:00.123Z"}`) or canonical
//! (`{"$date":{"$numberLong":"…"}}`, `{"$numberInt":"5"}`). The conversion
//! is the `bson` crate's (the driver's own), so both forms give the same
//! documents as a live database.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use bson::{Bson, Document};

use crate::import::{Collection, Source};

/// Why an export file could not be read at all (one bad record is not
/// this: it is passed on as `Err(reason)`, to be refused).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: no such file (an export has accounts.json, triangles.json and triangle_events.json)")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: a JSON array that does not parse: {reason}")]
    Array { path: PathBuf, reason: String },
}

/// The export file of `collection` in `dir`.
pub fn path_of(dir: &Path, collection: Collection) -> PathBuf {
    dir.join(format!("{}.json", collection.name()))
}

/// One Extended JSON value as a document, or why not.
pub fn document(value: serde_json::Value) -> Result<Document, String> {
    match Bson::try_from(value) {
        Ok(Bson::Document(d)) => Ok(d),
        Ok(other) => Err(format!("not a document but {:?}", other.element_type())),
        Err(e) => Err(format!("not Extended JSON: {e}")),
    }
}

/// Calls `each` with every record of `collection`'s file, in file order.
pub fn read_collection(
    dir: &Path,
    collection: Collection,
    each: &mut dyn FnMut(Source, Result<Document, String>),
) -> Result<(), ExportError> {
    let path = path_of(dir, collection);
    let rerr = |source| ExportError::Read {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::open(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ExportError::Missing { path: path.clone() }
        } else {
            rerr(source)
        }
    })?;
    let mut r = BufReader::new(file);
    let name = collection.name();
    let first = loop {
        let buf = r.fill_buf().map_err(rerr)?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let b = buf[i];
                r.consume(i);
                break Some(b);
            }
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    };
    if first == Some(b'[') {
        let mut text = Vec::new();
        r.read_to_end(&mut text).map_err(rerr)?;
        let items: Vec<serde_json::Value> =
            serde_json::from_slice(&text).map_err(|e| ExportError::Array {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        for (i, v) in items.into_iter().enumerate() {
            each(Source(format!("{name}.json[{i}]")), document(v));
        }
        return Ok(());
    }
    let mut line = String::new();
    let mut n = 0u64;
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(rerr)? == 0 {
            return Ok(());
        }
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        let rec = serde_json::from_str(&line)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(document);
        each(Source(format!("{name}.json:{n}")), rec);
    }
}
