//! The gateway's pure core: the share, the comparison record, the window
//! and the rollback latch. The shell gives it times and verdicts; it never
//! reads a clock or a socket.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::classify::{classify, AccountMemo, Outcome};
use crate::rollback::{HeightWatch, Rule, Trigger};
use crate::route::{side, Share, Side};
use crate::verdict::{Facts, Verdict};
use crate::window::{Window, WindowStats};

/// Accounts remembered for the letter-case and after-intended classes.
pub const MEMORY_ACCOUNTS_MAX: usize = 1_000_000;
/// Discrepancies kept for the report (the counts keep everything).
pub const DISCREPANCIES_MAX: usize = 10_000;

#[derive(Debug, Clone)]
struct Seen {
    first_spelling: String,
    memo: AccountMemo,
}

/// What the gateway remembers per address (lower case), oldest evicted first.
#[derive(Debug, Default)]
pub struct Memory {
    accounts: HashMap<String, Seen>,
    order: VecDeque<String>,
}

impl Memory {
    /// Notes a spelling of an address and returns what is known of it.
    fn see(&mut self, spelling: &str) -> AccountMemo {
        let key = spelling.to_ascii_lowercase();
        if let Some(s) = self.accounts.get_mut(&key) {
            if s.first_spelling != spelling {
                s.memo.mixed_case = true;
            }
            return s.memo;
        }
        if self.order.len() >= MEMORY_ACCOUNTS_MAX {
            if let Some(old) = self.order.pop_front() {
                self.accounts.remove(&old);
            }
        }
        self.order.push_back(key.clone());
        self.accounts.insert(
            key,
            Seen {
                first_spelling: spelling.to_owned(),
                memo: AccountMemo::default(),
            },
        );
        AccountMemo::default()
    }

    fn mark_diverged(&mut self, spelling: &str) {
        if let Some(s) = self.accounts.get_mut(&spelling.to_ascii_lowercase()) {
            s.memo.diverged = true;
        }
    }
}

/// One recorded discrepancy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Discrepancy {
    pub at_ms: u64,
    pub class: &'static str,
    pub intended: bool,
    pub account: Option<String>,
    pub nonce: Option<String>,
    pub phase2: Verdict,
    pub phase3: Option<Verdict>,
}

/// A proof's place in its account's order of submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    key: Option<String>,
    seq: u64,
}

/// A comparison that waits for an earlier proof of its account.
#[derive(Debug)]
struct Waiting {
    facts: Facts,
    /// `None`: no Phase 2 verdict, nothing to compare (the turn passes).
    pair: Option<(Verdict, Option<Verdict>)>,
}

#[derive(Debug, Default)]
struct Turns {
    issued: u64,
    recorded: u64,
    waiting: BTreeMap<u64, Waiting>,
}

/// The latched rollback.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RolledBack {
    pub at_ms: u64,
    pub share_before: u8,
    #[serde(flatten)]
    pub trigger: Trigger,
}

/// The gateway's state.
#[derive(Debug)]
pub struct Core {
    share: Share,
    rule: Rule,
    window: Window,
    heights: HeightWatch,
    memory: Memory,
    rolled_back: Option<RolledBack>,
    counts: BTreeMap<&'static str, u64>,
    discrepancies: VecDeque<Discrepancy>,
    answered: BTreeMap<&'static str, u64>,
    /// Per account (lower case): comparisons are recorded in the order the
    /// proofs came, whatever order the answers come back in (a refusal at
    /// intake is quicker than a finality), since a proof's class can depend
    /// on the earlier ones of its account.
    turns: HashMap<String, Turns>,
}

/// `GET /gateway/report`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    pub share_percent: u8,
    pub rolled_back: Option<RolledBack>,
    /// Comparisons by class (`match` and every discrepancy class).
    pub counts: BTreeMap<&'static str, u64>,
    pub compared: u64,
    pub intended: u64,
    pub unexpected: u64,
    pub window_ms: u64,
    pub window: WindowStats,
    /// Answers given to clients, by who gave them.
    pub answered: BTreeMap<&'static str, u64>,
    pub height: Option<u64>,
    pub discrepancies: Vec<Discrepancy>,
}

impl Core {
    pub fn new(now_ms: u64, share: Share, rule: Rule, window_ms: u64) -> Core {
        Core {
            share,
            rule,
            window: Window::new(window_ms),
            heights: HeightWatch::new(now_ms),
            memory: Memory::default(),
            rolled_back: None,
            counts: BTreeMap::new(),
            discrepancies: VecDeque::new(),
            answered: BTreeMap::new(),
            turns: HashMap::new(),
        }
    }

    pub const fn share(&self) -> Share {
        self.share
    }

    pub const fn rolled_back(&self) -> Option<RolledBack> {
        self.rolled_back
    }

    /// Who answers this account now (Phase 2 for a body without one).
    pub fn side(&self, account: Option<&str>) -> Side {
        account.map_or(Side::Phase2, |a| side(a, self.share))
    }

    /// The operator sets a share. It clears a rollback, the window and the
    /// stall clock: the operator has decided to try again.
    pub fn set_share(&mut self, now_ms: u64, share: Share) {
        self.share = share;
        if self.rolled_back.take().is_some() {
            self.window.clear();
            self.heights.restart(now_ms);
        }
    }

    /// Counts an answer given to a client.
    pub fn answered(&mut self, by: &'static str) {
        *self.answered.entry(by).or_insert(0) += 1;
    }

    /// A proof came in: its turn among its account's proofs.
    pub fn begin(&mut self, account: Option<&str>) -> Ticket {
        let key = account.map(str::to_ascii_lowercase);
        let seq = match &key {
            Some(k) => {
                let t = self.turns.entry(k.clone()).or_default();
                t.issued += 1;
                t.issued - 1
            }
            None => 0,
        };
        Ticket { key, seq }
    }

    /// Both answers are in (`pair` is `None` when Phase 2 gave no verdict):
    /// records this comparison and every later one of the account that was
    /// waiting for it, in order. Returns what was recorded.
    pub fn complete(
        &mut self,
        now_ms: u64,
        ticket: Ticket,
        facts: Facts,
        pair: Option<(Verdict, Option<Verdict>)>,
    ) -> Vec<(Outcome, Option<RolledBack>)> {
        let Some(key) = ticket.key else {
            return pair
                .map(|(p2, p3)| self.compare(now_ms, &facts, &p2, p3.as_ref()))
                .into_iter()
                .collect();
        };
        let Some(turns) = self.turns.get_mut(&key) else {
            return Vec::new();
        };
        turns.waiting.insert(ticket.seq, Waiting { facts, pair });
        let mut ready = Vec::new();
        while let Some(w) = turns.waiting.remove(&turns.recorded) {
            turns.recorded += 1;
            ready.push(w);
        }
        if turns.recorded == turns.issued {
            self.turns.remove(&key);
        }
        ready
            .into_iter()
            .filter_map(|w| {
                let (p2, p3) = w.pair?;
                Some(self.compare(now_ms, &w.facts, &p2, p3.as_ref()))
            })
            .collect()
    }

    /// Records one comparison; a rollback trigger if this one fired it.
    pub fn compare(
        &mut self,
        now_ms: u64,
        f: &Facts,
        p2: &Verdict,
        p3: Option<&Verdict>,
    ) -> (Outcome, Option<RolledBack>) {
        let memo = f
            .account
            .as_deref()
            .map(|a| self.memory.see(a))
            .unwrap_or_default();
        let outcome = classify(f, memo, p2, p3);
        *self.counts.entry(outcome.class()).or_insert(0) += 1;
        if let Outcome::Intended(_) = outcome {
            if p3.is_some_and(|v| v.ok != p2.ok) {
                if let Some(a) = &f.account {
                    self.memory.mark_diverged(a);
                }
            }
        }
        if outcome != Outcome::Match {
            if self.discrepancies.len() >= DISCREPANCIES_MAX {
                self.discrepancies.pop_front();
            }
            self.discrepancies.push_back(Discrepancy {
                at_ms: now_ms,
                class: outcome.class(),
                intended: matches!(outcome, Outcome::Intended(_)),
                account: f.account.clone(),
                nonce: f.nonce.clone(),
                phase2: p2.clone(),
                phase3: p3.cloned(),
            });
        }
        self.window.record(now_ms, outcome);
        (outcome, self.check(now_ms))
    }

    /// Phase 3's highest finalized height, as the health checks saw it.
    pub fn observe_height(&mut self, now_ms: u64, height: u64) {
        self.heights.observe(now_ms, height);
    }

    /// Applies the rule; a new rollback if one fires now.
    pub fn check(&mut self, now_ms: u64) -> Option<RolledBack> {
        if self.rolled_back.is_some() {
            return None;
        }
        let w = self.window.stats(now_ms);
        let trigger = self
            .rule
            .check(now_ms, w, self.window.span_ms(), &self.heights)?;
        let r = RolledBack {
            at_ms: now_ms,
            share_before: self.share.percent(),
            trigger,
        };
        self.rolled_back = Some(r);
        self.share = Share::ZERO;
        Some(r)
    }

    pub fn window(&mut self, now_ms: u64) -> WindowStats {
        self.window.stats(now_ms)
    }

    pub fn height(&self) -> Option<u64> {
        self.heights.height
    }

    /// When the height last grew (`None` before any height).
    pub fn height_changed_ms(&self) -> Option<u64> {
        self.heights.height.map(|_| self.heights.changed_ms)
    }

    pub fn report(&mut self, now_ms: u64) -> Report {
        let sum = |intended: bool| -> u64 {
            self.counts
                .iter()
                .filter(|(k, _)| **k != "match")
                .filter(|(k, _)| {
                    crate::classify::Intended::ALL
                        .iter()
                        .any(|i| i.as_str() == **k)
                        == intended
                })
                .map(|(_, n)| n)
                .sum()
        };
        Report {
            share_percent: self.share.percent(),
            rolled_back: self.rolled_back,
            compared: self.counts.values().sum(),
            intended: sum(true),
            unexpected: sum(false),
            counts: self.counts.clone(),
            window_ms: self.window.span_ms(),
            window: self.window.stats(now_ms),
            answered: self.answered.clone(),
            height: self.heights.height,
            discrepancies: self.discrepancies.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ok: bool, code: Option<&str>) -> Verdict {
        Verdict {
            ok,
            code: code.map(str::to_owned),
            reward_micro: ok.then_some(500_000),
            pending: false,
        }
    }

    fn facts(account: &str) -> Facts {
        Facts {
            account: Some(account.to_owned()),
            ..Facts::default()
        }
    }

    #[test]
    fn a_fault_past_5_percent_rolls_back_once_and_the_operator_clears_it() {
        let mut c = Core::new(0, Share::new(50).unwrap(), Rule::PLAN, 60_000);
        let good = v(true, None);
        for t in 0..95u64 {
            let (o, r) = c.compare(t * 100, &facts("0xaa"), &good, Some(&good));
            assert_eq!((o, r), (Outcome::Match, None));
        }
        for t in 95..100u64 {
            assert_eq!(c.compare(t * 100, &facts("0xaa"), &good, None).1, None);
        }
        // 5 of 100: not yet; the 6th of 101 is over 5%.
        let (_, r) = c.compare(10_000, &facts("0xaa"), &good, None);
        let r = r.expect("rolled back");
        assert_eq!(r.share_before, 50);
        assert_eq!(c.share(), Share::ZERO);
        assert_eq!(c.side(Some("0xaa")), Side::Phase2);
        assert_eq!(
            c.compare(10_100, &facts("0xaa"), &good, None).1,
            None,
            "latched: once"
        );
        c.set_share(20_000, Share::new(10).unwrap());
        assert_eq!(c.rolled_back(), None);
        assert_eq!(c.window(20_000), WindowStats::default());
        let rep = c.report(20_000);
        assert_eq!((rep.compared, rep.unexpected, rep.intended), (102, 7, 0));
        assert_eq!(rep.discrepancies.len(), 7);
    }

    #[test]
    fn a_stalled_chain_rolls_back_without_traffic() {
        let mut c = Core::new(0, Share::new(90).unwrap(), Rule::PLAN, 60_000);
        c.observe_height(1_000, 3);
        assert_eq!(c.check(200_000), None);
        c.observe_height(250_000, 4);
        assert_eq!(c.check(550_000), None);
        let r = c.check(550_001).expect("rolled back");
        assert_eq!(
            r.trigger,
            Trigger::NoNewHeight {
                height: Some(4),
                stalled_ms: 300_001
            }
        );
        assert_eq!(c.share(), Share::ZERO);
    }

    #[test]
    fn answers_that_come_back_out_of_order_are_classed_in_the_order_of_the_proofs() {
        let mut c = Core::new(0, Share::ZERO, Rule::PLAN, 60_000);
        let ok = v(true, None);
        let too_fast = v(false, Some("TOO_FAST"));
        // Proof 1: one system alone accepts it (an intended difference);
        // proof 2: a speed-gate difference that follows from it. Proof 2's
        // answers come back first.
        let t1 = c.begin(Some("0xAA"));
        let t2 = c.begin(Some("0xaa"));
        let other = c.begin(Some("0xbb"));
        let mut first = facts("0xaa");
        first.signature = Some([0u8; 65]); // v = 0: Phase 2's defect 2
        assert!(c
            .complete(
                1,
                t2,
                facts("0xaa"),
                Some((ok.clone(), Some(too_fast.clone())))
            )
            .is_empty());
        let r = c.complete(
            2,
            other,
            facts("0xbb"),
            Some((ok.clone(), Some(ok.clone()))),
        );
        assert_eq!(
            r,
            vec![(Outcome::Match, None)],
            "other accounts do not wait"
        );
        let r = c.complete(
            3,
            t1,
            first,
            Some((ok.clone(), Some(v(false, Some("BAD_SIGNATURE"))))),
        );
        let classes: Vec<_> = r.iter().map(|(o, _)| o.class()).collect();
        assert_eq!(classes, vec!["v_zero_one", "after_intended"]);
        assert!(c.turns.is_empty(), "no account waits any more");
        // A turn without a Phase 2 verdict passes to the next.
        let t1 = c.begin(Some("0xcc"));
        let t2 = c.begin(Some("0xcc"));
        assert!(c
            .complete(4, t2, facts("0xcc"), Some((ok.clone(), Some(ok.clone()))))
            .is_empty());
        assert_eq!(
            c.complete(5, t1, facts("0xcc"), None),
            vec![(Outcome::Match, None)]
        );
        assert!(c.turns.is_empty());
    }

    #[test]
    fn a_letter_case_variant_is_remembered_and_its_replay_intended() {
        let mut c = Core::new(0, Share::ZERO, Rule::PLAN, 60_000);
        let ok = v(true, None);
        assert_eq!(
            c.compare(1, &facts("0xabc"), &ok, Some(&ok)).0,
            Outcome::Match
        );
        let replay = v(false, Some("NONCE_REPLAY"));
        assert_eq!(
            c.compare(2, &facts("0xABC"), &ok, Some(&replay)).0,
            Outcome::Intended(crate::classify::Intended::LetterCase)
        );
        // The accepted-by-one-side difference marks the account diverged.
        let too_fast = v(false, Some("TOO_FAST"));
        assert_eq!(
            c.compare(3, &facts("0xabc"), &too_fast, Some(&ok)).0,
            Outcome::Intended(crate::classify::Intended::AfterIntended)
        );
        assert_eq!(c.report(3).unexpected, 0);
    }
}
