//! The state root in the block: a proposer builds on its own root, a block
//! on another root is refused with [`StateDiverged`], and a decided one
//! stops the app before anything executes.

use super::*;

const OURS: [u8; 32] = [0xaa; 32];
const THEIRS: [u8; 32] = [0xbb; 32];

/// A core that executed height 5, to state root [`OURS`].
fn at_five() -> Core {
    let mut c = core(3);
    c.height = 5;
    c.root = OURS;
    c
}

fn empty_on(root: [u8; 32]) -> BlockData {
    BlockData::on_root(root, Vec::<WireBatch>::new())
}

#[test]
fn a_proposal_carries_the_proposers_root_for_the_previous_height() {
    let mut c = at_five();
    let mut fx = Vec::new();
    let now = Instant::now();
    c.get_value(Height(6), Round::new(0), T, now, &[], &mut fx)
        .expect("get value");
    c.timer(now + T, &mut fx).expect("timer");
    let block = published(&fx).expect("published");
    assert_eq!(block.prev_root(), OURS);
    let (_, _, id) = proposed(&fx).expect("proposed");
    assert_eq!(id, block.id(), "the value id commits to the root");
}

#[test]
fn the_root_after_execution_is_the_next_blocks_previous_root() {
    let mut c = core(3);
    let mut state = ChainState::default();
    let block = BlockData::new(Vec::<WireBatch>::new());
    let mut fx = Vec::new();
    c.accept(
        Height(1),
        Round::new(0),
        Round::Nil,
        me(),
        block.clone(),
        None,
        Validity::Valid,
        &mut fx,
    )
    .expect("accept");
    let Decide::Execute(job) = c
        .decide(Height(1), Round::new(0), block.id())
        .expect("decide")
    else {
        panic!("held");
    };
    execute(&mut c, &mut state, job);
    assert_ne!(state.state_root(), [0; 32]);
    assert_eq!(c.root(), state.state_root());
    assert_eq!(
        c.check_block(Height(2), &empty_on(state.state_root())),
        BlockCheck::Valid
    );
    assert!(matches!(
        c.check_block(Height(2), &empty_on([0; 32])),
        BlockCheck::Invalid(BlockFault::StateDiverged(_))
    ));
}

#[test]
fn a_block_on_another_root_is_refused_with_state_diverged() {
    let c = at_five();
    assert_eq!(c.check_block(Height(6), &empty_on(OURS)), BlockCheck::Valid);
    assert_eq!(
        c.check_block(Height(6), &empty_on(THEIRS)),
        BlockCheck::Invalid(BlockFault::StateDiverged(StateDiverged {
            height: 5,
            ours: OURS,
            theirs: THEIRS,
        }))
    );
    // Refused before any signature is checked: the batch is not verified.
    let with_batch = BlockData::on_root(THEIRS, vec![batch(1)]);
    assert!(matches!(
        c.check_block(Height(6), &with_batch),
        BlockCheck::Invalid(BlockFault::StateDiverged(_))
    ));
    // A proposal ahead of us (height 7 is built on 6, not executed here
    // yet) cannot be judged now; its decision is.
    assert_eq!(
        c.check_block(Height(7), &empty_on(THEIRS)),
        BlockCheck::Valid
    );
}

#[test]
fn a_decided_block_on_another_root_stops_the_app_before_executing() {
    let mut c = at_five();
    let block = empty_on(THEIRS);
    let mut fx = Vec::new();
    c.accept(
        Height(6),
        Round::new(0),
        Round::Nil,
        me(),
        block.clone(),
        None,
        Validity::Invalid,
        &mut fx,
    )
    .expect("accept");
    let err = c
        .decide(Height(6), Round::new(0), block.id())
        .expect_err("diverged");
    let AppError::StateDiverged(d) = err else {
        panic!("{err}");
    };
    assert_eq!(
        d,
        StateDiverged {
            height: 5,
            ours: OURS,
            theirs: THEIRS
        }
    );
    assert!(d.to_string().contains("height 5"), "{d}");
    assert_eq!(c.height(), 5, "nothing executed");
    // The same decision on our root executes.
    let good = empty_on(OURS);
    c.accept(
        Height(6),
        Round::new(1),
        Round::Nil,
        me(),
        good.clone(),
        None,
        Validity::Valid,
        &mut fx,
    )
    .expect("accept");
    assert!(matches!(
        c.decide(Height(6), Round::new(1), good.id()),
        Ok(Decide::Execute(_))
    ));
}
