//! Per-account order of the requests to one system: a proof's request
//! leaves only after the previous proof of its account was answered by that
//! system. The speed gate and the moratorium judge a proof against the
//! account's previous accepted one, so two proofs of one account must reach
//! a system in the order the client sent them; concurrent tasks alone would
//! not guarantee it. Phones send one proof per ≥ 10 s (the moratorium), so
//! the wait costs a real client nothing.

use std::collections::HashMap;

use tokio::sync::oneshot;

/// The chains of one system, by account (lower case).
#[derive(Debug, Default)]
pub struct Chains {
    next_gen: u64,
    tails: HashMap<String, (u64, oneshot::Receiver<()>)>,
}

/// One request's place in its account's chain.
#[derive(Debug)]
pub struct Link {
    prev: Option<oneshot::Receiver<()>>,
    done: Option<oneshot::Sender<()>>,
    key: Option<(String, u64)>,
}

impl Chains {
    /// The next link of `account`'s chain (no chain for a body without one).
    pub fn link(&mut self, account: Option<&str>) -> Link {
        let Some(a) = account else {
            return Link {
                prev: None,
                done: None,
                key: None,
            };
        };
        let key = a.to_ascii_lowercase();
        let (tx, rx) = oneshot::channel();
        self.next_gen += 1;
        let gen = self.next_gen;
        let prev = self.tails.insert(key.clone(), (gen, rx)).map(|(_, r)| r);
        Link {
            prev,
            done: Some(tx),
            key: Some((key, gen)),
        }
    }

    /// The request of `link` was answered: the next may go. The chain is
    /// dropped when this was its last link.
    pub fn finish(&mut self, link: &mut Link) {
        if let Some(tx) = link.done.take() {
            if tx.send(()).is_err() {
                // Nobody waits on this link (it was the last): nothing to wake.
            }
        }
        if let Some((key, gen)) = link.key.take() {
            if self.tails.get(&key).is_some_and(|(g, _)| *g == gen) {
                self.tails.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.tails.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tails.is_empty()
    }
}

impl Link {
    /// Waits until the previous request of the account was answered (or
    /// given up: a dropped link also lets the next one go).
    pub async fn turn(&mut self) {
        if let Some(rx) = self.prev.take() {
            if rx.await.is_err() {
                // The previous request ended without finishing its link
                // (its task was dropped): it is over either way.
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_second_request_of_an_account_waits_for_the_first() {
        let mut c = Chains::default();
        let mut a1 = c.link(Some("0xAA"));
        let mut a2 = c.link(Some("0xaa"));
        let mut b1 = c.link(Some("0xbb"));
        a1.turn().await;
        b1.turn().await; // another account does not wait
        let waiting = tokio::spawn(async move {
            a2.turn().await;
            a2
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a2 waits for a1");
        c.finish(&mut a1);
        let mut a2 = waiting.await.unwrap();
        c.finish(&mut b1);
        assert_eq!(c.len(), 1);
        c.finish(&mut a2);
        assert!(c.is_empty(), "finished chains are dropped");
        // A dropped link lets the next go.
        let a3 = c.link(Some("0xaa"));
        let mut a4 = c.link(Some("0xaa"));
        drop(a3);
        a4.turn().await;
        c.finish(&mut a4);
        assert!(c.is_empty());
    }
}
