//! Reading a live Phase 2 database with the `mongodb` driver (3.x): each
//! collection's documents, sorted by `_id`, through the driver's batched
//! cursor.

use bson::{doc, Document};
use mongodb::Client;

use crate::import::{Collection, Source};

/// Why the database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("cannot connect to {uri}: {reason}")]
    Connect { uri: String, reason: String },
    #[error("{uri} names no database: give --db NAME")]
    NoDatabase { uri: String },
    #[error("reading {collection} failed: {reason}")]
    Read {
        collection: &'static str,
        reason: String,
    },
}

/// A connected database.
#[derive(Debug)]
pub struct Live {
    db: mongodb::Database,
}

impl Live {
    /// Connects to `uri`; `db` names the database, else the URI's.
    pub async fn connect(uri: &str, db: Option<&str>) -> Result<Live, LiveError> {
        let client = Client::with_uri_str(uri)
            .await
            .map_err(|e| LiveError::Connect {
                uri: uri.to_owned(),
                reason: e.to_string(),
            })?;
        let db = match db {
            Some(name) => client.database(name),
            None => client
                .default_database()
                .ok_or_else(|| LiveError::NoDatabase {
                    uri: uri.to_owned(),
                })?,
        };
        Ok(Live { db })
    }

    /// Calls `each` with every document of `collection`, by `_id`.
    pub async fn read_collection(
        &self,
        collection: Collection,
        each: &mut (dyn FnMut(Source, Result<Document, String>) + Send),
    ) -> Result<(), LiveError> {
        let name = collection.name();
        let err = |e: mongodb::error::Error| LiveError::Read {
            collection: name,
            reason: e.to_string(),
        };
        let mut cursor = self
            .db
            .collection::<Document>(name)
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await
            .map_err(err)?;
        let mut n = 0u64;
        while cursor.advance().await.map_err(err)? {
            n += 1;
            let source = Source(format!("mongodb {name} #{n}"));
            let rec = cursor
                .deserialize_current()
                .map_err(|e| format!("not a document: {e}"));
            each(source, rec);
        }
        Ok(())
    }
}
