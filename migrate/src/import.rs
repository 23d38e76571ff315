//! The pure core of the import: Phase 2's documents in, a Phase 3 initial
//! state, a report and the refused records out.
//!
//! Feed every `accounts` and `triangles` document first, then the
//! `triangle_events` (an event is checked against the triangles read).
//! Rules (`docs/MIGRATION_GUIDE.md`, "What the import keeps"):
//!
//! * **accounts**: `_id` an address in any letter case, `balance` a string
//!   (or integer) of micro-STEP. Letter-case variants of one address are one
//!   account: their balances are added and the merge is reported.
//! * **triangles**: `_id` a canonical `STEP-TRI-v1` id (checksum), `level`
//!   and `face` agreeing with it, `polygon` the mesh triangle's own vertices
//!   (Phase 2's mock triangles are ±0.01° boxes), `clicks` and `state` a
//!   state Phase 3's execution can reach.
//! * **triangle_events**: each `click` gives its (account, nonce) to the
//!   nonce index and is a candidate for the account's last proof (the latest
//!   by the proof's own timestamp). It must name a triangle of the
//!   `triangles` collection. Two clicks with one (address, nonce) that differ
//!   only in the account's letter case (Phase 2's defect 5) are one use,
//!   reported as merged. Other event types carry nothing Phase 3 keeps (the
//!   triangle's document holds their result); they are counted, not refused.
//!
//! A record that breaks a rule is a [`Refusal`] with its reason; nothing is
//! dropped without one.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use bson::{Bson, Document};
use step_consensus::execution::CLICKS_MAX;
use step_consensus::initial::{
    triangle_state_reason, InitialAccount, InitialLast, InitialStateFile, InitialTriangle,
    INITIAL_STATE_FORMAT,
};
use step_engine::mesh::{triangle_vertices, Vec3};
use step_engine::proof::{Nonce, Timestamp};
use step_engine::{Address, TriangleId};

use crate::report::{CollectionCounts, Merge, MergedUse, Report};

/// One of Phase 2's collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Collection {
    Accounts,
    Triangles,
    TriangleEvents,
}

impl Collection {
    /// In the order the import reads them.
    pub const ALL: [Collection; 3] = [
        Collection::Accounts,
        Collection::Triangles,
        Collection::TriangleEvents,
    ];

    /// The MongoDB collection's name (and the export file's stem).
    pub const fn name(self) -> &'static str {
        match self {
            Collection::Accounts => "accounts",
            Collection::Triangles => "triangles",
            Collection::TriangleEvents => "triangle_events",
        }
    }
}

/// Where a document came from: `accounts.json:12`, `mongodb accounts #12`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source(pub String);

/// A record the import refused, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub collection: Collection,
    pub source: Source,
    /// The document's `_id`, as Extended JSON text (`null` when it has none).
    pub id: String,
    pub reason: String,
    /// The document itself, relaxed Extended JSON (`null` for a line that
    /// was not a document).
    pub document: serde_json::Value,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} (_id {}): {}",
            self.collection.name(),
            self.source.0,
            self.id,
            self.reason
        )
    }
}

/// The import's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub state: InitialStateFile,
    pub report: Report,
    pub refusals: Vec<Refusal>,
}

#[derive(Debug, Default)]
struct Account {
    balance_micro: u64,
    /// Each document's `_id` as sent and its balance.
    variants: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    unix_ms: i64,
    lat: f64,
    lon: f64,
}

/// Most chord distance between a stored polygon vertex and the mesh's
/// vertex (unit sphere; 1e-6 is about 6 m): the stored polygon must be the
/// mesh triangle, not a ±0.01° box.
pub const VERTEX_CHORD_MAX: f64 = 1e-6;

/// The import in progress. See the module's rules.
#[derive(Debug, Default)]
pub struct Importer {
    accounts: BTreeMap<Address, Account>,
    triangles: BTreeMap<String, InitialTriangle>,
    /// Every triangle `_id` read, refused or not: an event naming one is
    /// not an event of an unknown triangle.
    triangle_ids: HashSet<String>,
    nonces: BTreeMap<Address, BTreeSet<String>>,
    /// For each (address, nonce), the account text of its first click.
    first_use: BTreeMap<(Address, String), String>,
    last: BTreeMap<Address, Last>,
    counts: BTreeMap<Collection, CollectionCounts>,
    merged_uses: Vec<MergedUse>,
    refusals: Vec<Refusal>,
    balance_read_micro: u128,
    balance_refused_micro: u128,
    balances_not_integer: u64,
}

fn id_text(doc: &Document) -> String {
    match doc.get("_id") {
        Some(Bson::String(s)) => s.clone(),
        Some(b) => b.clone().into_relaxed_extjson().to_string(),
        None => "null".into(),
    }
}

fn integer(b: &Bson) -> Option<i64> {
    match b {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Some(*v as i64),
        _ => None,
    }
}

fn number(b: &Bson) -> Option<f64> {
    match b {
        Bson::Int32(v) => Some(f64::from(*v)),
        Bson::Int64(v) => Some(*v as f64),
        Bson::Double(v) => Some(*v),
        _ => None,
    }
}

/// A balance: a string of decimal digits (Phase 2's form) or an integer.
fn balance(b: Option<&Bson>) -> Result<u64, String> {
    match b {
        Some(Bson::String(s)) => {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                return Err(format!(
                    "balance {s:?} is not an integer of micro-STEP (digits only)"
                ));
            }
            s.parse::<u64>()
                .map_err(|_| format!("balance {s:?} does not fit in 64 bits"))
        }
        Some(b) => match integer(b) {
            Some(v) => u64::try_from(v).map_err(|_| format!("balance {v} is negative")),
            None => Err(format!(
                "balance {} is not an integer of micro-STEP",
                b.clone().into_relaxed_extjson()
            )),
        },
        None => Err("no balance".into()),
    }
}

/// A date: a BSON date or an ISO-8601 text.
fn date_ms(b: Option<&Bson>) -> Option<i64> {
    match b? {
        Bson::DateTime(d) => Some(d.timestamp_millis()),
        Bson::String(s) => Timestamp::parse(s).map(|t| t.unix_ms()).or_else(|| {
            bson::DateTime::parse_rfc3339_str(s)
                .ok()
                .map(|d| d.timestamp_millis())
        }),
        _ => None,
    }
}

/// The `[lon, lat]` ring of a GeoJSON polygon.
fn ring(doc: &Document) -> Option<Vec<Vec3>> {
    let poly = doc.get_document("polygon").ok()?;
    let rings = poly.get_array("coordinates").ok()?;
    let Bson::Array(points) = rings.first()? else {
        return None;
    };
    points
        .iter()
        .map(|p| {
            let Bson::Array(c) = p else { return None };
            let lon = number(c.first()?)?;
            let lat = number(c.get(1)?)?;
            (lat.is_finite() && lon.is_finite()).then(|| Vec3::from_lat_lon(lat, lon))
        })
        .collect()
}

fn chord(a: Vec3, b: Vec3) -> f64 {
    let (dx, dy, dz) = (a.x - b.x, a.y - b.y, a.z - b.z);
    (dx * dx + dy * dy + dz * dz).sqrt()
}

/// Why `doc`'s polygon is not the mesh triangle `id`'s, if it is not.
fn polygon_reason(doc: &Document, id: &TriangleId) -> Option<String> {
    let Some(mut points) = ring(doc) else {
        return Some("no GeoJSON polygon of [lon, lat] points".into());
    };
    if points.len() > 1 && chord(points[0], points[points.len() - 1]) <= VERTEX_CHORD_MAX {
        points.pop();
    }
    let mesh = triangle_vertices(id);
    let matches = points.len() == 3
        && mesh
            .iter()
            .all(|m| points.iter().any(|p| chord(*p, *m) <= VERTEX_CHORD_MAX));
    (!matches).then(|| {
        format!(
            "polygon ({} points) is not the mesh triangle's 3 vertices: a Phase 2 mock triangle",
            points.len()
        )
    })
}

impl Importer {
    pub fn new() -> Importer {
        Importer::default()
    }

    fn counts(&mut self, c: Collection) -> &mut CollectionCounts {
        self.counts.entry(c).or_default()
    }

    /// Records a refusal of `doc` (or of a line that is not a document).
    pub fn refuse(
        &mut self,
        collection: Collection,
        source: Source,
        doc: Option<&Document>,
        reason: String,
    ) {
        self.counts(collection).read += 1;
        self.counts(collection).refused += 1;
        self.refusals.push(Refusal {
            collection,
            source,
            id: doc.map_or_else(|| "null".into(), id_text),
            reason,
            document: doc.map_or(serde_json::Value::Null, |d| {
                Bson::Document(d.clone()).into_relaxed_extjson()
            }),
        });
    }

    /// Takes one document of `collection`.
    pub fn document(&mut self, collection: Collection, source: Source, doc: &Document) {
        let result = match collection {
            Collection::Accounts => self.account(doc),
            Collection::Triangles => self.triangle(doc),
            Collection::TriangleEvents => self.event(doc),
        };
        match result {
            Ok(()) => self.counts(collection).read += 1,
            Err(reason) => self.refuse(collection, source, Some(doc), reason),
        }
    }

    fn account(&mut self, doc: &Document) -> Result<(), String> {
        let parsed = balance(doc.get("balance"));
        if let Ok(b) = parsed {
            self.balance_read_micro += u128::from(b);
        } else {
            self.balances_not_integer += 1;
        }
        let integer_balance = parsed.as_ref().ok().copied();
        let refused_balance = |me: &mut Importer| {
            if let Some(b) = integer_balance {
                me.balance_refused_micro += u128::from(b);
            }
        };
        let Ok(id) = doc.get_str("_id") else {
            refused_balance(self);
            return Err("`_id` is not a string (an address)".into());
        };
        let Some(address) = Address::parse(id) else {
            refused_balance(self);
            return Err(format!("`_id` {id:?} is not 0x and 40 hex digits"));
        };
        let b = parsed?;
        let a = self.accounts.entry(address).or_default();
        let Some(sum) = a.balance_micro.checked_add(b) else {
            refused_balance(self);
            return Err("the merged balance of this address overflows 64 bits".into());
        };
        a.balance_micro = sum;
        a.variants.push((id.to_owned(), b));
        let merged = a.variants.len() > 1;
        self.counts(Collection::Accounts).imported += 1;
        if merged {
            self.counts(Collection::Accounts).merged += 1;
        }
        Ok(())
    }

    fn triangle(&mut self, doc: &Document) -> Result<(), String> {
        let Ok(text) = doc.get_str("_id") else {
            return Err("`_id` is not a string (a triangle id)".into());
        };
        self.triangle_ids.insert(text.to_owned());
        let id = TriangleId::parse(text)
            .map_err(|e| format!("`_id` {text:?} is not a STEP-TRI-v1 id: {e}"))?;
        if id.to_string() != text {
            return Err(format!("`_id` {text:?} is not canonical ({id})"));
        }
        if self.triangles.contains_key(text) {
            return Err("a second document with this `_id`".into());
        }
        for (field, want) in [("level", id.level()), ("face", id.face())] {
            if let Some(b) = doc.get(field) {
                if integer(b) != Some(i64::from(want)) {
                    return Err(format!(
                        "`{field}` {} disagrees with the id's {want}",
                        b.clone().into_relaxed_extjson()
                    ));
                }
            }
        }
        if let Some(reason) = polygon_reason(doc, &id) {
            return Err(reason);
        }
        let clicks = doc
            .get("clicks")
            .and_then(integer)
            .and_then(|c| u8::try_from(c).ok())
            .filter(|c| *c <= CLICKS_MAX)
            .ok_or("`clicks` is not an integer 0-28")?;
        let state = doc.get_str("state").map_err(|_| "no `state` text")?;
        let subdivided = match state {
            "subdivided" => true,
            "pending" | "active" | "partially_mined" => false,
            "exhausted" if clicks >= CLICKS_MAX => false,
            "exhausted" => {
                return Err(format!(
                    "`exhausted` with {clicks} clicks: Phase 3 would mine it up to 28"
                ))
            }
            other => return Err(format!("`state` {other:?} is not a Phase 2 state")),
        };
        if let Some(reason) = triangle_state_reason(id.level(), clicks, subdivided) {
            return Err(format!("{state} with {clicks} clicks: {reason}"));
        }
        self.triangles.insert(
            text.to_owned(),
            InitialTriangle {
                id: text.to_owned(),
                clicks,
                subdivided,
            },
        );
        self.counts(Collection::Triangles).imported += 1;
        Ok(())
    }

    fn event(&mut self, doc: &Document) -> Result<(), String> {
        let kind = doc
            .get_str("eventType")
            .map_err(|_| "no `eventType` text")?;
        if kind != "click" {
            self.counts(Collection::TriangleEvents).not_needed += 1;
            return Ok(());
        }
        let triangle = doc
            .get_str("triangleId")
            .map_err(|_| "no `triangleId` text")?;
        if !self.triangle_ids.contains(triangle) {
            return Err(format!(
                "names triangle {triangle:?}, which is not in the triangles collection"
            ));
        }
        let account = doc.get_str("account").map_err(|_| "no `account` text")?;
        let address = Address::parse(account)
            .ok_or_else(|| format!("`account` {account:?} is not 0x and 40 hex digits"))?;
        let nonce = doc.get_str("nonce").map_err(|_| "no `nonce` text")?;
        Nonce::parse(nonce).ok_or_else(|| format!("`nonce` {nonce:?} is not a STEP nonce"))?;
        let unix_ms = date_ms(doc.get("timestamp")).ok_or("`timestamp` is not a date")?;
        let payload = doc.get_document("payload").map_err(|_| "no `payload`")?;
        let lat = payload.get("lat").and_then(number);
        let lon = payload.get("lon").and_then(number);
        let (Some(lat), Some(lon)) = (lat, lon) else {
            return Err("`payload.lat` / `payload.lon` are not numbers".into());
        };
        if !((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)) {
            return Err(format!("({lat}, {lon}) is not a position"));
        }
        let key = (address, nonce.to_owned());
        if let Some(first) = self.first_use.get(&key) {
            if first == account {
                return Err(format!(
                    "a second click with account {account:?} and nonce {nonce:?} (Phase 2's unique index forbids it)"
                ));
            }
            self.merged_uses.push(MergedUse {
                address: address.to_string(),
                nonce: nonce.to_owned(),
                variants: vec![first.clone(), account.to_owned()],
            });
            self.counts(Collection::TriangleEvents).merged += 1;
        } else {
            self.first_use.insert(key, account.to_owned());
            self.nonces
                .entry(address)
                .or_default()
                .insert(nonce.to_owned());
        }
        let later = self.last.get(&address).is_none_or(|l| unix_ms > l.unix_ms);
        if later {
            self.last.insert(address, Last { unix_ms, lat, lon });
        }
        self.counts(Collection::TriangleEvents).imported += 1;
        Ok(())
    }

    /// The state, the report and the refusals.
    pub fn finish(self) -> Outcome {
        let mut merges = Vec::new();
        let mut addresses: BTreeSet<Address> = self.accounts.keys().copied().collect();
        addresses.extend(self.nonces.keys().copied());
        let mut accounts = Vec::with_capacity(addresses.len());
        let mut balance_after_micro: u128 = 0;
        for address in addresses {
            let a = self.accounts.get(&address);
            let balance_micro = a.map_or(0, |a| a.balance_micro);
            balance_after_micro += u128::from(balance_micro);
            if let Some(a) = a.filter(|a| a.variants.len() > 1) {
                merges.push(Merge {
                    address: address.to_string(),
                    variants: a.variants.clone(),
                    balance_micro,
                });
            }
            let nonces: Vec<String> = self
                .nonces
                .get(&address)
                .map_or_else(Vec::new, |n| n.iter().cloned().collect());
            let last = self.last.get(&address).map(|l| InitialLast {
                unix_ms: l.unix_ms,
                lat: l.lat,
                lon: l.lon,
            });
            accounts.push(InitialAccount {
                address: address.to_string(),
                balance_micro,
                last,
                nonces,
            });
        }
        let mut counts = self.counts;
        for c in Collection::ALL {
            counts.entry(c).or_default();
        }
        let report = Report {
            counts,
            accounts_in_state: accounts.len() as u64,
            triangles_in_state: self.triangles.len() as u64,
            nonces_in_state: self.nonces.values().map(|n| n.len() as u64).sum(),
            merges,
            merged_uses: self.merged_uses,
            balance_read_micro: self.balance_read_micro,
            balance_refused_micro: self.balance_refused_micro,
            balances_not_integer: self.balances_not_integer,
            balance_after_micro,
        };
        Outcome {
            state: InitialStateFile {
                format: INITIAL_STATE_FORMAT.into(),
                accounts,
                triangles: self.triangles.into_values().collect(),
            },
            report,
            refusals: self.refusals,
        }
    }
}
