//! The idle rule (no empty blocks) and the re-gossip of own batches
//! left undecided: [`Core::finalized`].

use super::*;

const IDLE: Duration = Duration::from_secs(1);

fn idle_core(interval: Duration) -> Core {
    let mut c = core(3);
    c.cfg.max_idle_block_interval = interval;
    c
}

fn no_evidence() -> MisbehaviorEvidence<StepContext> {
    MisbehaviorEvidence {
        proposals: Default::default(),
        votes: Default::default(),
    }
}

/// `Finalized(h)` at `now`: the effects.
fn finalize(c: &mut Core, h: u64, now: Instant) -> Vec<Effect> {
    let mut fx = Vec::new();
    c.finalized(Height(h), &no_evidence(), now, &mut fx)
        .expect("finalized");
    fx
}

/// A core (idle interval [`IDLE`], empty mempool) that finalized height 1
/// at `now`: height 2 waits.
fn waiting(now: Instant) -> Core {
    let mut c = idle_core(IDLE);
    finalize(&mut c, 1, now);
    c
}

fn started(fx: &[Effect]) -> Vec<u64> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::StartHeight(h) => Some(h.0),
            _ => None,
        })
        .collect()
}

#[test]
fn idle_the_next_height_waits_for_the_interval_then_starts() {
    let mut c = idle_core(IDLE);
    let now = Instant::now();
    let mut fx = finalize(&mut c, 1, now);
    assert!(started(&fx).is_empty(), "idle: held back: {fx:?}");
    assert_eq!(
        c.start_wait(),
        Some(StartWait {
            height: Height(2),
            until: now + IDLE
        })
    );
    assert_eq!(c.deadline(), Some(now + IDLE), "the shell's timer");
    c.timer(now + IDLE - Duration::from_millis(1), &mut fx)
        .expect("timer");
    assert!(started(&fx).is_empty(), "not before the interval: {fx:?}");
    c.timer(now + IDLE, &mut fx).expect("timer");
    assert_eq!(started(&fx), [2], "at the interval");
    assert_eq!(c.start_wait(), None);
    assert_eq!(c.deadline(), None);
    c.timer(now + 2 * IDLE, &mut fx).expect("timer");
    assert_eq!(started(&fx), [2], "started once");
}

#[test]
fn a_batch_arriving_starts_the_waiting_height_at_once() {
    let now = Instant::now();
    // Our own pipeline's batch.
    let mut c = waiting(now);
    let fx = local(&mut c, [4]);
    assert_eq!(started(&fx), [2], "{fx:?}");
    assert_eq!(c.start_wait(), None);
    // A peer's gossiped batch, once verified; an invalid one starts nothing.
    let mut c = idle_core(IDLE);
    let mut fx = finalize(&mut c, 1, now);
    c.gossip_verdict(Arc::new(batch(5)), peer(1), bad("test"), now, &mut fx)
        .expect("verdict");
    assert!(started(&fx).is_empty(), "invalid: still idle: {fx:?}");
    c.gossip_verdict(Arc::new(batch(6)), peer(1), Ok(()), now, &mut fx)
        .expect("verdict");
    assert_eq!(started(&fx), [2], "{fx:?}");
}

#[test]
fn a_batch_in_the_mempool_or_a_zero_interval_starts_the_next_height_at_once() {
    let now = Instant::now();
    let mut c = idle_core(IDLE);
    local(&mut c, [4]);
    let fx = finalize(&mut c, 1, now);
    assert_eq!(started(&fx), [2], "work waiting: {fx:?}");
    let mut c = idle_core(Duration::ZERO);
    let fx = finalize(&mut c, 1, now);
    assert_eq!(started(&fx), [2], "no idle wait configured: {fx:?}");
}

#[test]
fn a_height_that_came_by_sync_never_waits() {
    let now = Instant::now();
    let mut c = idle_core(IDLE);
    let block = BlockData::new(Vec::<WireBatch>::new());
    let bytes = block.encode().expect("encode");
    let mut fx = Vec::new();
    c.accept(
        Height(1),
        Round::new(0),
        Round::Nil,
        ValidatorAddress([2; 20]),
        block,
        Some(bytes),
        Validity::Valid,
        &mut fx,
    )
    .expect("accept");
    let fx = finalize(&mut c, 1, now);
    assert_eq!(started(&fx), [2], "catching up: {fx:?}");
}

#[test]
fn the_proposers_proposal_for_the_waiting_height_starts_it() {
    let now = Instant::now();
    let mut c = waiting(now);
    let proposer = c.validators.proposer(Height(2), Round::new(0)).address;
    let accept = |c: &mut Core, proposer| {
        let mut fx = Vec::new();
        c.accept(
            Height(2),
            Round::new(0),
            Round::Nil,
            proposer,
            BlockData::new(Vec::<WireBatch>::new()),
            None,
            Validity::Valid,
            &mut fx,
        )
        .expect("accept");
        started(&fx)
    };
    assert!(
        accept(&mut c, ValidatorAddress([9; 20])).is_empty(),
        "not the proposer of (2, 0): still idle"
    );
    assert_eq!(accept(&mut c, proposer), [2]);
    // Its proposal arriving before our own Finalized: no wait either.
    let mut c = idle_core(IDLE);
    assert!(accept(&mut c, ValidatorAddress([9; 20])).is_empty());
    let fx = finalize(&mut c, 1, now);
    assert!(started(&fx).is_empty(), "not from the proposer: idle");
    let mut c = idle_core(IDLE);
    assert!(accept(&mut c, proposer).is_empty(), "nothing waits yet");
    let fx = finalize(&mut c, 1, now);
    assert_eq!(started(&fx), [2], "proposed ahead: {fx:?}");
}

fn gossips(fx: &[Effect]) -> usize {
    fx.iter().filter(|e| matches!(e, Effect::Gossip(_))).count()
}

#[test]
fn an_own_batch_undecided_for_two_heights_is_gossiped_again() {
    let mut c = idle_core(IDLE);
    let now = Instant::now();
    assert_eq!(gossips(&local(&mut c, [7])), 1, "gossiped when made");
    let fx = finalize(&mut c, 1, now);
    assert_eq!(gossips(&fx), 0, "one height without it: not yet");
    for (h, want) in [(2, 1), (3, 0), (4, 1)] {
        let fx = finalize(&mut c, h, now);
        assert_eq!(
            gossips(&fx),
            want,
            "height {h}: again every {REGOSSIP_AFTER_HEIGHTS} heights while undecided"
        );
    }
    // Once it has left the mempool (decided), it is never gossiped again.
    c.mempool.remove(&[[7; 32]].into_iter().collect());
    for h in 5..8 {
        let fx = finalize(&mut c, h, now);
        assert_eq!(gossips(&fx), 0, "height {h}: decided, not gossiped");
    }
}
