//! The intake log: every proof this validator answers 202 for is on disk
//! first (`docs/adr/0032-intake-log.md`).
//!
//! An append-only log in segment files `intake-<seq>.log` under one
//! directory. A record is `len: u32 LE ‖ crc32(payload): u32 LE ‖ payload`,
//! the payload one proof's wire bytes (`WireProof::write`, see `record.rs`).
//!
//! * **Group commit.** One writer thread takes appends from a channel,
//!   gathers every append that arrives within [`LogSettings::group_commit`]
//!   of the group's first (at most [`GROUP_MAX`]), writes them with one
//!   `write` and one `fdatasync`, and only then completes them (the
//!   ledger answers 202 there). A failed write or sync fails the group and
//!   every later append ([`IntakeLogError::Failed`]).
//! * **Bounded.** At most `max_records` proofs are reserved or live
//!   (appended, not yet decided); [`IntakeLog::reserve`] refuses the next
//!   one with [`IntakeLogError::Full`] before the pipeline sees it.
//! * **Forgotten when decided.** [`IntakeLog::forget`] drops a proof once a
//!   decided block holds it (accepted or rejected); a segment other than the
//!   active one is deleted when none of its proofs is live.
//! * **Replayed at open.** [`IntakeLog::open`] reads every segment, in
//!   order, and returns the live proofs for the ledger to queue again before
//!   the node serves. A torn record at the end of the *last* segment (a
//!   crash mid-write: that write was never acknowledged) is cut off with a
//!   warning; a bad record anywhere else is [`IntakeLogError::Corrupt`].

use crate::ledger::ProofId;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use step_engine::Proof;

mod record;
pub use record::{decode_record, encode_record, EncodeError};

/// Most appends in one group (one write, one fsync).
pub const GROUP_MAX: usize = 4_096;
/// Bytes of a record's header: length and checksum.
pub const HEADER_BYTES: usize = 8;
/// Longest payload a record may carry (a proof's wire form is < 400 bytes).
pub const PAYLOAD_MAX_BYTES: usize = 1_024;

/// Where and how the log keeps its records (`[intake]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub dir: PathBuf,
    /// Most proofs reserved or live at once.
    pub max_records: usize,
    /// How long a group waits for more appends after its first.
    pub group_commit: Duration,
    /// A segment this large is closed and a new one started.
    pub segment_bytes: u64,
}

/// Why the log refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum IntakeLogError {
    #[error(
        "intake log {dir}: full: {records} proofs not yet decided (intake.max_records = {max})"
    )]
    Full {
        dir: PathBuf,
        records: usize,
        max: usize,
    },
    #[error("intake log {path}: {operation} failed: {source}")]
    Io {
        path: PathBuf,
        operation: &'static str,
        source: std::io::Error,
    },
    #[error("intake log {path}: the record at byte {offset} is corrupt ({reason}) and is not at the end of the last segment")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },
    #[error("intake log {dir}: an earlier write or fsync failed; it takes no more proofs")]
    Failed { dir: PathBuf },
    #[error("intake log {dir}: the writer thread stopped")]
    Stopped { dir: PathBuf },
    #[error("intake log {dir}: {source}")]
    Unloggable { dir: PathBuf, source: EncodeError },
}

/// What happened when a torn tail was cut off at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub path: PathBuf,
    pub offset: u64,
    pub dropped_bytes: u64,
    pub reason: &'static str,
}

/// What [`IntakeLog::open`] read back.
#[derive(Debug, Default)]
pub struct Replay {
    /// The live proofs, oldest first, each once.
    pub proofs: Vec<Proof>,
    pub truncated: Option<Truncation>,
}

/// Counters since open (`/metrics`, the benchmark).
#[derive(Debug, Default)]
pub struct LogStats {
    pub appended: AtomicU64,
    pub groups: AtomicU64,
    pub fsyncs: AtomicU64,
    pub bytes: AtomicU64,
    pub segments_deleted: AtomicU64,
}

// Appends are nearly every message: boxing the proof would allocate once per
// proof on the intake path to shrink the rare `Forget`.
#[allow(clippy::large_enum_variant)]
enum Msg<T> {
    Append(Proof, T),
    Forget(Vec<ProofId>),
}

/// See the module documentation. `T` is what an append carries to its
/// completion (the ledger: the submitter's reply).
pub struct IntakeLog<T: Send + 'static> {
    dir: PathBuf,
    tx: Mutex<Option<mpsc::Sender<Msg<T>>>>,
    records: Arc<AtomicUsize>,
    max_records: usize,
    failed: Arc<AtomicBool>,
    stats: Arc<LogStats>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl<T: Send + 'static> std::fmt::Debug for IntakeLog<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeLog")
            .field("dir", &self.dir)
            .field("records", &self.records())
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path, operation: &'static str) -> impl FnOnce(std::io::Error) -> IntakeLogError {
    let path = path.to_path_buf();
    move |source| IntakeLogError::Io {
        path,
        operation,
        source,
    }
}

fn lock<V>(m: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("intake-{seq:016}.log"))
}

fn sync_dir(dir: &Path) -> Result<(), IntakeLogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync of the directory"))
}

/// The segments under `dir`, by sequence number.
fn segments(dir: &Path) -> Result<BTreeMap<u64, PathBuf>, IntakeLogError> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir, "listing"))? {
        let entry = entry.map_err(io_err(dir, "listing"))?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_prefix("intake-"))
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.insert(seq, entry.path());
    }
    Ok(out)
}

struct Writer<T, F> {
    dir: PathBuf,
    /// Live proofs per segment.
    live_in: BTreeMap<u64, usize>,
    live: HashMap<ProofId, u64>,
    active_seq: u64,
    active: File,
    active_bytes: u64,
    segment_bytes: u64,
    group_commit: Duration,
    records: Arc<AtomicUsize>,
    failed: Arc<AtomicBool>,
    stats: Arc<LogStats>,
    complete: F,
    buf: Vec<u8>,
    group: Vec<(Option<ProofId>, T)>,
}

impl<T: Send + 'static> IntakeLog<T> {
    /// Opens (or creates) the log under `s.dir`, reads back its live proofs
    /// (cutting off a torn tail), starts a new segment and the writer
    /// thread. `complete` runs on the writer thread for every append, after
    /// its group's fsync (`Ok`) or failure (`Err`).
    pub fn open<F>(s: &LogSettings, complete: F) -> Result<(IntakeLog<T>, Replay), IntakeLogError>
    where
        F: FnMut(T, Result<(), &IntakeLogError>) + Send + 'static,
    {
        std::fs::create_dir_all(&s.dir).map_err(io_err(&s.dir, "creating the directory"))?;
        let found = segments(&s.dir)?;
        let last = found.keys().next_back().copied();
        let mut replay = Replay::default();
        let mut live: HashMap<ProofId, u64> = HashMap::new();
        let mut live_in: BTreeMap<u64, usize> = BTreeMap::new();
        for (&seq, path) in &found {
            let bytes = std::fs::read(path).map_err(io_err(path, "reading"))?;
            let mut offset = 0usize;
            while offset < bytes.len() {
                match decode_record(&bytes, offset) {
                    Ok((p, next)) => {
                        offset = next;
                        let Some(id) = ProofId::of_proof(&p) else {
                            continue;
                        };
                        if live.insert(id, seq).is_none() {
                            *live_in.entry(seq).or_default() += 1;
                            replay.proofs.push(p);
                        }
                    }
                    Err(reason) if Some(seq) == last => {
                        let t = Truncation {
                            path: path.clone(),
                            offset: offset as u64,
                            dropped_bytes: (bytes.len() - offset) as u64,
                            reason,
                        };
                        tracing::warn!(
                            path = %t.path.display(),
                            offset = t.offset,
                            dropped_bytes = t.dropped_bytes,
                            reason,
                            "intake log: torn tail after a crash cut off (that write was never acknowledged)"
                        );
                        let f = OpenOptions::new()
                            .write(true)
                            .open(path)
                            .map_err(io_err(path, "opening to truncate"))?;
                        f.set_len(t.offset)
                            .and_then(|()| f.sync_all())
                            .map_err(io_err(path, "truncating the torn tail"))?;
                        replay.truncated = Some(t);
                        break;
                    }
                    Err(reason) => {
                        return Err(IntakeLogError::Corrupt {
                            path: path.clone(),
                            offset: offset as u64,
                            reason,
                        })
                    }
                }
            }
        }
        for (&seq, path) in &found {
            if live_in.get(&seq).copied().unwrap_or(0) == 0 {
                std::fs::remove_file(path).map_err(io_err(path, "deleting an empty segment"))?;
            }
        }
        let active_seq = last.map_or(0, |l| l + 1);
        let path = segment_path(&s.dir, active_seq);
        let active = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path, "creating a segment"))?;
        sync_dir(&s.dir)?;
        let records = Arc::new(AtomicUsize::new(live.len()));
        let failed = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(LogStats::default());
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: s.dir.clone(),
            live_in,
            live,
            active_seq,
            active,
            active_bytes: 0,
            segment_bytes: s.segment_bytes.max(1),
            group_commit: s.group_commit,
            records: Arc::clone(&records),
            failed: Arc::clone(&failed),
            stats: Arc::clone(&stats),
            complete,
            buf: Vec::with_capacity(GROUP_MAX * 256),
            group: Vec::with_capacity(GROUP_MAX),
        };
        let handle = std::thread::Builder::new()
            .name("step-intake-log".into())
            .spawn(move || writer.run(&rx))
            .map_err(io_err(&s.dir, "starting the writer thread"))?;
        tracing::info!(
            dir = %s.dir.display(),
            live = replay.proofs.len(),
            "intake log opened"
        );
        Ok((
            IntakeLog {
                dir: s.dir.clone(),
                tx: Mutex::new(Some(tx)),
                records,
                max_records: s.max_records,
                failed,
                stats,
                writer: Mutex::new(Some(handle)),
            },
            replay,
        ))
    }

    /// Takes one of the `max_records` places for a proof about to be
    /// queued; [`IntakeLog::release`] gives it back if the proof is not
    /// accepted, [`IntakeLog::forget`] once it is decided.
    pub fn reserve(&self) -> Result<(), IntakeLogError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(IntakeLogError::Failed {
                dir: self.dir.clone(),
            });
        }
        self.records
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_records).then_some(n + 1)
            })
            .map(|_| ())
            .map_err(|records| IntakeLogError::Full {
                dir: self.dir.clone(),
                records,
                max: self.max_records,
            })
    }

    /// Gives back a place [`IntakeLog::reserve`] took for a proof that was
    /// not accepted.
    pub fn release(&self) {
        let released = self
            .records
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if released.is_err() {
            tracing::error!(dir = %self.dir.display(), "intake log: a place released that was never reserved");
        }
    }

    /// Appends `p` (its place reserved); `done` reaches the completion after
    /// the group's fsync. Never blocks. `Err(done)` when the writer has
    /// stopped ([`IntakeLog::close`]): nothing was written.
    pub fn append(&self, p: &Proof, done: T) -> Result<(), T> {
        let guard = lock(&self.tx);
        let Some(tx) = guard.as_ref() else {
            return Err(done);
        };
        match tx.send(Msg::Append(*p, done)) {
            Ok(()) => Ok(()),
            Err(mpsc::SendError(Msg::Append(_, done))) => Err(done),
            // `send` hands back the message it was given: an append.
            Err(mpsc::SendError(Msg::Forget(_))) => Ok(()),
        }
    }

    /// The error an [`IntakeLog::append`] that came back means.
    pub fn stopped(&self) -> IntakeLogError {
        IntakeLogError::Stopped {
            dir: self.dir.clone(),
        }
    }

    /// Drops decided proofs (ids the log does not hold are ignored).
    pub fn forget(&self, ids: Vec<ProofId>) {
        if ids.is_empty() {
            return;
        }
        let guard = lock(&self.tx);
        if let Some(tx) = guard.as_ref() {
            if tx.send(Msg::Forget(ids)).is_err() {
                tracing::warn!(dir = %self.dir.display(), "intake log writer stopped; decided proofs stay in the log until the next start");
            }
        }
    }

    /// Proofs reserved or live.
    pub fn records(&self) -> usize {
        self.records.load(Ordering::Acquire)
    }

    /// True once a write or fsync failed.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> &LogStats {
        &self.stats
    }

    /// Stops the writer after it has written what it was given.
    pub fn close(&self) {
        lock(&self.tx).take();
        if let Some(w) = lock(&self.writer).take() {
            if w.join().is_err() {
                tracing::error!(dir = %self.dir.display(), "intake log writer panicked");
            }
        }
    }
}

impl<T: Send + 'static> Drop for IntakeLog<T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T, F> Writer<T, F>
where
    F: FnMut(T, Result<(), &IntakeLogError>),
{
    fn run(mut self, rx: &mpsc::Receiver<Msg<T>>) {
        let mut forgets: Vec<Vec<ProofId>> = Vec::new();
        while let Ok(first) = rx.recv() {
            match first {
                Msg::Forget(ids) => self.forget(&ids),
                Msg::Append(p, t) => {
                    self.push(&p, t);
                    let deadline = Instant::now() + self.group_commit;
                    while self.group.len() < GROUP_MAX {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(Msg::Append(p, t)) => self.push(&p, t),
                            // After the group: its ids may be among them.
                            Ok(Msg::Forget(ids)) => forgets.push(ids),
                            Err(_) => break,
                        }
                    }
                    self.commit();
                    for ids in forgets.drain(..) {
                        self.forget(&ids);
                    }
                }
            }
        }
    }

    fn push(&mut self, p: &Proof, t: T) {
        let id = ProofId::of_proof(p);
        let encoded = match id {
            Some(_) => encode_record(p, &mut self.buf),
            None => Err(EncodeError::Unsigned),
        };
        match encoded {
            Ok(()) => self.group.push((id, t)),
            Err(source) => {
                // Never for an accepted proof (it has a signature and encodes).
                let e = IntakeLogError::Unloggable {
                    dir: self.dir.clone(),
                    source,
                };
                self.records.fetch_sub(1, Ordering::AcqRel);
                (self.complete)(t, Err(&e));
            }
        }
    }

    fn commit(&mut self) {
        let path = segment_path(&self.dir, self.active_seq);
        let result = if self.failed.load(Ordering::Acquire) {
            Err(IntakeLogError::Failed {
                dir: self.dir.clone(),
            })
        } else {
            self.active
                .write_all(&self.buf)
                .map_err(io_err(&path, "write"))
                .and_then(|()| self.active.sync_data().map_err(io_err(&path, "fdatasync")))
        };
        let bytes = self.buf.len() as u64;
        self.buf.clear();
        match result {
            Ok(()) => {
                self.active_bytes += bytes;
                let s = &self.stats;
                s.groups.fetch_add(1, Ordering::Relaxed);
                s.fsyncs.fetch_add(1, Ordering::Relaxed);
                s.bytes.fetch_add(bytes, Ordering::Relaxed);
                s.appended
                    .fetch_add(self.group.len() as u64, Ordering::Relaxed);
                let seq = self.active_seq;
                for (id, t) in self.group.drain(..) {
                    if let Some(id) = id {
                        if self.live.insert(id, seq).is_some() {
                            // Logged twice: one place is enough.
                            self.records.fetch_sub(1, Ordering::AcqRel);
                        } else {
                            *self.live_in.entry(seq).or_default() += 1;
                        }
                    }
                    (self.complete)(t, Ok(()));
                }
                if self.active_bytes >= self.segment_bytes {
                    self.rotate();
                }
            }
            Err(e) => {
                if !self.failed.swap(true, Ordering::AcqRel) {
                    tracing::error!(error = %e, "intake log write failed: no more proofs are accepted");
                }
                self.records.fetch_sub(self.group.len(), Ordering::AcqRel);
                for (_, t) in self.group.drain(..) {
                    (self.complete)(t, Err(&e));
                }
            }
        }
    }

    fn rotate(&mut self) {
        let next = self.active_seq + 1;
        let path = segment_path(&self.dir, next);
        let opened = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path, "creating a segment"))
            .and_then(|f| sync_dir(&self.dir).map(|()| f));
        match opened {
            Ok(f) => {
                let old = self.active_seq;
                self.active = f;
                self.active_seq = next;
                self.active_bytes = 0;
                if self.live_in.get(&old).copied().unwrap_or(0) == 0 {
                    self.delete(old);
                }
            }
            Err(e) => {
                // Keep appending to the full segment; it only grows past
                // `segment_bytes`.
                tracing::warn!(error = %e, "intake log: cannot start a new segment");
            }
        }
    }

    fn forget(&mut self, ids: &[ProofId]) {
        for id in ids {
            let Some(seq) = self.live.remove(id) else {
                continue;
            };
            self.records.fetch_sub(1, Ordering::AcqRel);
            let left = self.live_in.entry(seq).or_default();
            *left = left.saturating_sub(1);
            if *left == 0 && seq != self.active_seq {
                self.delete(seq);
            }
        }
    }

    fn delete(&mut self, seq: u64) {
        self.live_in.remove(&seq);
        let path = segment_path(&self.dir, seq);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                self.stats.segments_deleted.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "intake log: cannot delete a decided segment");
            }
        }
    }
}

#[cfg(test)]
#[path = "intake_log_tests.rs"]
mod tests;
