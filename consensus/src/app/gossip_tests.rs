use super::*;

fn batch(tag: u8) -> Arc<WireBatch> {
    Arc::new(WireBatch {
        proofs: Vec::new(),
        pubkeys: Vec::new(),
        digest: [tag; 32],
    })
}

fn tag(b: Option<Arc<WireBatch>>) -> Option<u8> {
    b.map(|b| b.digest[0])
}

#[test]
fn a_peer_is_muted_after_strikes_and_heard_again_later() {
    let mut s = PeerScores::<u8>::default();
    let t0 = Instant::now();
    for k in 1..GOSSIP_STRIKES {
        assert!(!s.strike(&7, t0), "strike {k} alone does not mute");
        assert!(!s.is_muted(&7, t0));
    }
    assert!(s.strike(&7, t0), "the last strike mutes");
    assert!(s.is_muted(&7, t0 + GOSSIP_MUTE / 2));
    assert!(!s.is_muted(&8, t0), "other peers are unaffected");
    assert!(!s.is_muted(&7, t0 + GOSSIP_MUTE), "the mute expires");
}

#[test]
fn one_verification_in_flight_per_publisher_in_arrival_order() {
    let mut g = GossipSched::<u8>::default();
    let now = Instant::now();
    assert_eq!(tag(g.offer(batch(1), 7, now, false, true)), Some(1));
    assert_eq!(
        tag(g.offer(batch(2), 7, now, false, true)),
        None,
        "waits behind 1"
    );
    assert_eq!(
        tag(g.offer(batch(3), 7, now, false, true)),
        None,
        "waits behind 2"
    );
    assert_eq!(
        tag(g.offer(batch(9), 8, now, false, true)),
        Some(9),
        "another publisher verifies in parallel"
    );
    let (v, next) = g.verdict(&[1; 32], 7, true, now);
    assert_eq!((v, tag(next)), (Verdict::Accept, Some(2)));
    let (v, next) = g.verdict(&[2; 32], 7, true, now);
    assert_eq!((v, tag(next)), (Verdict::Accept, Some(3)), "arrival order");
    let (_, next) = g.verdict(&[3; 32], 7, true, now);
    assert_eq!(tag(next), None);
    assert_eq!(g.accepted().load(Ordering::Relaxed), 3);
}

#[test]
fn known_decided_or_in_flight_batches_are_not_verified_again() {
    let mut g = GossipSched::<u8>::default();
    let now = Instant::now();
    assert_eq!(
        tag(g.offer(batch(1), 7, now, true, true)),
        None,
        "in the mempool"
    );
    assert_eq!(tag(g.offer(batch(1), 7, now, false, true)), Some(1));
    assert_eq!(
        tag(g.offer(batch(1), 8, now, false, true)),
        None,
        "being verified"
    );
    g.decided(&[[5; 32]]);
    assert_eq!(tag(g.offer(batch(5), 8, now, false, true)), None, "decided");
    assert_eq!(
        tag(g.offer(batch(6), 8, now, false, false)),
        None,
        "no room"
    );
    // Dropped for lack of room, it was not queued: with room it is verified.
    assert_eq!(tag(g.offer(batch(6), 8, now, false, true)), Some(6));
}

#[test]
fn a_batch_decided_while_verified_is_dropped() {
    let mut g = GossipSched::<u8>::default();
    let now = Instant::now();
    assert!(g.offer(batch(1), 7, now, false, true).is_some());
    g.decided(&[[1; 32]]);
    assert_eq!(g.verdict(&[1; 32], 7, true, now).0, Verdict::Decided);
    assert_eq!(g.accepted().load(Ordering::Relaxed), 0);
}

#[test]
fn repeated_invalid_batches_mute_the_publisher_until_the_mute_expires() {
    let mut g = GossipSched::<u8>::default();
    let now = Instant::now();
    for k in 0..GOSSIP_STRIKES {
        assert!(g.offer(batch(k as u8), 7, now, false, true).is_some());
        let (v, _) = g.verdict(&[k as u8; 32], 7, false, now);
        assert_eq!(
            v,
            Verdict::Invalid {
                muted: k + 1 == GOSSIP_STRIKES
            }
        );
    }
    assert!(g.offer(batch(50), 7, now, false, true).is_none(), "muted");
    assert!(
        g.offer(batch(51), 8, now, false, true).is_some(),
        "others heard"
    );
    assert!(
        g.offer(batch(50), 7, now + GOSSIP_MUTE, false, true)
            .is_some(),
        "heard again after the mute"
    );
}

#[test]
fn at_most_gossip_verifying_max_batches_wait() {
    let mut g = GossipSched::<u8>::default();
    let now = Instant::now();
    let mut n = 0;
    for k in 0..GOSSIP_VERIFYING_MAX + 10 {
        let mut b = WireBatch::clone(&batch(0));
        b.digest[..8].copy_from_slice(&(k as u64).to_le_bytes());
        g.offer(Arc::new(b), 7, now, false, true);
        n += 1;
    }
    assert_eq!(n, GOSSIP_VERIFYING_MAX + 10);
    assert_eq!(g.verifying.len(), GOSSIP_VERIFYING_MAX);
}

#[test]
fn decided_digests_are_remembered_up_to_the_bound() {
    let mut r = RecentDigests::default();
    let digest = |k: usize| {
        let mut d = [0u8; 32];
        d[..8].copy_from_slice(&(k as u64).to_le_bytes());
        d
    };
    let all: Vec<_> = (0..=DECIDED_RECENT_MAX).map(digest).collect();
    r.insert_all(&all);
    assert!(!r.contains(&digest(0)), "the oldest is forgotten");
    assert!(r.contains(&digest(1)));
    assert!(r.contains(&digest(DECIDED_RECENT_MAX)));
}
