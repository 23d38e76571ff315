//! The import's summary: per collection, records read, imported, merged,
//! refused; the letter-case merges; the balance totals before and after.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::import::Collection;

/// One collection's counts. `read = imported + refused + not_needed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CollectionCounts {
    pub read: u64,
    /// Taken into the state (merged ones included).
    pub imported: u64,
    /// Of the imported, those folded into an earlier record of the same
    /// address (accounts) or (address, nonce) (click events).
    pub merged: u64,
    pub refused: u64,
    /// Events that are not clicks (create, subdivide, state_change): their
    /// result is in the triangle's document.
    pub not_needed: u64,
}

/// Accounts whose `_id`s differ only in letter case: one account on Phase 3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Merge {
    /// The address, lower case.
    pub address: String,
    /// Each document's `_id` as Phase 2 stored it, with its balance.
    pub variants: Vec<(String, u64)>,
    /// Their sum, the account's balance on Phase 3.
    pub balance_micro: u64,
}

/// One (address, nonce) used by clicks under several letter cases (Phase 2's
/// defect 5: the same proof accepted twice): one nonce use on Phase 3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergedUse {
    pub address: String,
    pub nonce: String,
    /// The `account` texts of the first click and of this one.
    pub variants: Vec<String>,
}

/// The summary of one import.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub counts: BTreeMap<Collection, CollectionCounts>,
    pub accounts_in_state: u64,
    pub triangles_in_state: u64,
    pub nonces_in_state: u64,
    pub merges: Vec<Merge>,
    pub merged_uses: Vec<MergedUse>,
    /// The sum of every integer `balance` read, refused accounts included.
    pub balance_read_micro: u128,
    /// The part of it on refused accounts.
    pub balance_refused_micro: u128,
    /// Refused balances that are not integers (not in either sum).
    pub balances_not_integer: u64,
    /// The sum of the balances in the state.
    pub balance_after_micro: u128,
}

impl Serialize for Collection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Report {
    /// Whether the totals agree: before = after + refused.
    pub fn balances_agree(&self) -> bool {
        self.balance_read_micro == self.balance_after_micro + self.balance_refused_micro
    }

    /// Records refused over all collections.
    pub fn refused(&self) -> u64 {
        self.counts.values().map(|c| c.refused).sum()
    }
}

fn step(micro: u128) -> String {
    format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<16} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "collection", "read", "imported", "merged", "refused", "not needed"
        )?;
        for (c, n) in &self.counts {
            writeln!(
                f,
                "{:<16} {:>10} {:>10} {:>10} {:>10} {:>10}",
                c.name(),
                n.read,
                n.imported,
                n.merged,
                n.refused,
                n.not_needed
            )?;
        }
        writeln!(
            f,
            "state: {} accounts, {} triangles, {} used nonces",
            self.accounts_in_state, self.triangles_in_state, self.nonces_in_state
        )?;
        for m in &self.merges {
            let parts: Vec<String> = m
                .variants
                .iter()
                .map(|(id, b)| format!("{id} ({b})"))
                .collect();
            writeln!(
                f,
                "merged account {}: {} = {} micro-STEP",
                m.address,
                parts.join(" + "),
                m.balance_micro
            )?;
        }
        for u in &self.merged_uses {
            writeln!(
                f,
                "merged nonce use {} {:?}: accepted twice by Phase 2 as {}",
                u.address,
                u.nonce,
                u.variants.join(" and ")
            )?;
        }
        writeln!(
            f,
            "balance before: {} STEP; after: {} STEP; refused: {} STEP{}; {}",
            step(self.balance_read_micro),
            step(self.balance_after_micro),
            step(self.balance_refused_micro),
            if self.balances_not_integer > 0 {
                format!(
                    " (and {} balances that are not integers)",
                    self.balances_not_integer
                )
            } else {
                String::new()
            },
            if self.balances_agree() {
                "before = after + refused"
            } else {
                "MISMATCH"
            }
        )
    }
}
