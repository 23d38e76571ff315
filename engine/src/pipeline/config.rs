//! Pipeline settings, the injected clock and the test hook.

use super::commit::Done;
use super::worker::Job;
use crate::proof::{Proof, BODY_MAX_BYTES};
use crate::verify::Verifier;
use std::sync::Arc;
use std::time::Duration;

/// The injected wall clock: unix milliseconds.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// A clock that calls `f` (for example the system clock, in the binary).
    pub fn new(f: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    /// The system wall clock in unix ms, for the binaries and tools that
    /// inject it (the engine itself only reads the clock it is given).
    pub fn system() -> Clock {
        Clock::new(unix_now_ms)
    }

    /// A clock that always reads `unix_ms`.
    pub fn fixed(unix_ms: i64) -> Clock {
        Clock::new(move || unix_ms)
    }

    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

/// The wall clock in unix ms (0 before 1970, `i64::MAX` past year 292
/// million): the one place the workspace reads it, behind [`Clock::system`].
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// A hook a worker calls with a proof's sequence number just before checking
/// it. For tests and fault injection (delays); `None` in production.
pub type Hook = Arc<dyn Fn(u64) + Send + Sync>;

/// Pipeline settings. [`PipelineConfig::new`] gives the defaults.
#[derive(Clone)]
pub struct PipelineConfig {
    pub verifier: Verifier,
    pub clock: Clock,
    /// Stateless worker threads (default: the number of cores).
    pub workers: usize,
    /// Body buffers, which is also the ingest queue's capacity and the most
    /// proofs between submission and verdict (default 1,024).
    pub capacity: usize,
    /// Proofs per pre-validated batch (default 100).
    pub batch_size: usize,
    /// A partial batch is emitted this long after its first proof (default 20 ms).
    pub flush_after: Duration,
    /// Emitted batches waiting for the consumer (default 64). When full, the
    /// workers wait, the ingest queue fills and submissions are refused.
    pub batch_queue: usize,
    /// Most jobs a worker takes from the ingest queue at once (default 16).
    pub worker_batch: usize,
    /// Pin worker *i* to core *i mod cores* (default true; best effort).
    pub pin_workers: bool,
    /// State shards for [`Pipeline::with_memory_state`] (default 1).
    pub shards: usize,
    /// Test hook, see [`Hook`].
    pub before_check: Option<Hook>,
}

impl std::fmt::Debug for PipelineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineConfig")
            .field("verifier", &self.verifier)
            .field("workers", &self.workers)
            .field("capacity", &self.capacity)
            .field("batch_size", &self.batch_size)
            .field("flush_after", &self.flush_after)
            .field("batch_queue", &self.batch_queue)
            .field("worker_batch", &self.worker_batch)
            .field("pin_workers", &self.pin_workers)
            .field("shards", &self.shards)
            .field("before_check", &self.before_check.is_some())
            .finish_non_exhaustive()
    }
}

impl PipelineConfig {
    pub fn new(verifier: Verifier, clock: Clock) -> Self {
        PipelineConfig {
            verifier,
            clock,
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            capacity: 1024,
            batch_size: 100,
            flush_after: Duration::from_millis(20),
            batch_queue: 64,
            worker_batch: 16,
            pin_workers: true,
            shards: 1,
            before_check: None,
        }
    }

    /// Upper bound, in bytes, of the memory the pipeline itself holds,
    /// whatever the offered load (state shards and batches kept by the
    /// consumer excluded). See the module documentation.
    pub fn memory_bound_bytes(&self) -> usize {
        use std::mem::size_of;
        let c = self.normalized();
        let bodies = c.capacity * (BODY_MAX_BYTES + size_of::<Vec<u8>>());
        let queues =
            c.capacity * (size_of::<Job>() + size_of::<Vec<u8>>() + size_of::<Option<Done>>());
        let workers = c.workers * c.worker_batch * (size_of::<Job>() + size_of::<Done>());
        let batches = (c.batch_queue + 2) * c.batch_size * (size_of::<Proof>() + 64);
        bodies + queues + workers + batches
    }

    pub(crate) fn normalized(&self) -> PipelineConfig {
        let mut c = self.clone();
        c.workers = c.workers.max(1);
        c.capacity = c.capacity.max(1);
        c.batch_size = c.batch_size.max(1);
        c.batch_queue = c.batch_queue.max(1);
        c.worker_batch = c.worker_batch.max(1);
        c.shards = c.shards.max(1);
        c
    }
}
