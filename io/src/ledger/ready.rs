//! When a node is ready (`GET /health/ready`): able to take proofs *and* to
//! get them finalized. A pure rule over what the ledger observes, so that
//! each reason has a unit test.

use std::time::Duration;

/// Why a node is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("the node is shutting down")]
    Closing,
    #[error("the consensus node stopped")]
    Stopped,
    #[error("the intake log failed a write: no proof can be made durable")]
    IntakeLogFailed,
    #[error("{heard} of {validators} validators heard within the last {window_ms} ms (this one included); a quorum is {needed}")]
    NoQuorum {
        heard: usize,
        needed: usize,
        validators: usize,
        window_ms: u64,
    },
    #[error("no new height for {age_ms} ms (health.ready_height_age_ms_max = {max_ms})")]
    Stalled { age_ms: u64, max_ms: u64 },
}

impl NotReady {
    /// A short name for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotReady::Closing => "closing",
            NotReady::Stopped => "stopped",
            NotReady::IntakeLogFailed => "intake_log_failed",
            NotReady::NoQuorum { .. } => "no_quorum",
            NotReady::Stalled { .. } => "stalled",
        }
    }
}

/// Validators needed for a decision among `n` of equal power: more than
/// two thirds (2f+1 when n = 3f+1).
pub const fn quorum(n: usize) -> usize {
    n * 2 / 3 + 1
}

/// What [`readiness`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub closing: bool,
    pub running: bool,
    pub log_failed: bool,
    /// Validators in the set.
    pub validators: usize,
    /// *Other* validators heard within `peer_window` (`None`: rule off).
    pub peers_heard: Option<usize>,
    pub peer_window: Duration,
    /// Since the last new height (or the start).
    pub height_age: Duration,
    /// `None`: rule off.
    pub height_age_max: Option<Duration>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Ready, or the first reason not to be, in the order of the fields.
pub fn readiness(o: &Observed) -> Result<(), NotReady> {
    if o.closing {
        return Err(NotReady::Closing);
    }
    if !o.running {
        return Err(NotReady::Stopped);
    }
    if o.log_failed {
        return Err(NotReady::IntakeLogFailed);
    }
    if let Some(peers) = o.peers_heard {
        let heard = peers.saturating_add(1).min(o.validators.max(1));
        let needed = quorum(o.validators);
        if heard < needed {
            return Err(NotReady::NoQuorum {
                heard,
                needed,
                validators: o.validators,
                window_ms: ms(o.peer_window),
            });
        }
    }
    if let Some(max) = o.height_age_max {
        if o.height_age > max {
            return Err(NotReady::Stalled {
                age_ms: ms(o.height_age),
                max_ms: ms(max),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy(validators: usize) -> Observed {
        Observed {
            closing: false,
            running: true,
            log_failed: false,
            validators,
            peers_heard: Some(validators - 1),
            peer_window: Duration::from_secs(30),
            height_age: Duration::from_secs(1),
            height_age_max: Some(Duration::from_secs(60)),
        }
    }

    #[test]
    fn quorum_is_two_thirds_plus_one() {
        let q: Vec<usize> = [1, 3, 4, 5, 7, 10, 16, 50].map(quorum).into();
        assert_eq!(q, [1, 3, 3, 4, 5, 7, 11, 34]);
    }

    /// Fewer than 2f+1 heard (itself included): not ready; exactly 2f+1: ready.
    #[test]
    fn too_few_validators_heard_is_not_ready() {
        let mut o = healthy(4);
        assert_eq!(readiness(&o), Ok(()));
        o.peers_heard = Some(2);
        assert_eq!(readiness(&o), Ok(()), "3 of 4 is a quorum");
        o.peers_heard = Some(1);
        assert_eq!(
            readiness(&o),
            Err(NotReady::NoQuorum {
                heard: 2,
                needed: 3,
                validators: 4,
                window_ms: 30_000
            })
        );
        o.peers_heard = Some(0);
        assert!(matches!(
            readiness(&o),
            Err(NotReady::NoQuorum { heard: 1, .. })
        ));
        o.peers_heard = None;
        assert_eq!(readiness(&o), Ok(()), "rule off");
        // One validator is its own quorum.
        let mut one = healthy(1);
        one.peers_heard = Some(0);
        assert_eq!(readiness(&one), Ok(()));
    }

    /// No new height for longer than the limit: not ready; at the limit: ready.
    #[test]
    fn no_new_height_for_too_long_is_not_ready() {
        let mut o = healthy(4);
        o.height_age = Duration::from_secs(60);
        assert_eq!(readiness(&o), Ok(()));
        o.height_age = Duration::from_millis(60_001);
        assert_eq!(
            readiness(&o),
            Err(NotReady::Stalled {
                age_ms: 60_001,
                max_ms: 60_000
            })
        );
        o.height_age_max = None;
        assert_eq!(readiness(&o), Ok(()), "rule off");
    }

    #[test]
    fn stopping_stopped_and_a_failed_log_come_first() {
        let mut o = healthy(4);
        o.peers_heard = Some(0);
        o.log_failed = true;
        assert_eq!(readiness(&o), Err(NotReady::IntakeLogFailed));
        o.running = false;
        assert_eq!(readiness(&o), Err(NotReady::Stopped));
        o.closing = true;
        assert_eq!(readiness(&o), Err(NotReady::Closing));
    }
}
