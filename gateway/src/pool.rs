//! The Phase 3 validators behind the gateway: which are up, and the order
//! in which a request tries them. A proof starts at the validator of its
//! account's bucket (accounts are spread over the validators, and one
//! account's proofs reach one validator in the order they came, which its
//! speed gate and moratorium depend on); other requests rotate. The healthy
//! ones come first, the others last, as a last resort. Pure: the shell
//! reports what it saw.

/// What the gateway knows of one validator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Node {
    pub addr: String,
    pub up: bool,
    /// Failures since it last answered.
    pub failures: u32,
    pub height: Option<u64>,
}

/// The validators, and a rotating start.
#[derive(Debug, Clone)]
pub struct Pool {
    nodes: Vec<Node>,
    next: usize,
}

impl Pool {
    /// Every validator starts up (the first health check corrects it).
    pub fn new(addrs: &[String]) -> Pool {
        Pool {
            nodes: addrs
                .iter()
                .map(|a| Node {
                    addr: a.clone(),
                    up: true,
                    failures: 0,
                    height: None,
                })
                .collect(),
            next: 0,
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The order in which the next request tries the validators: from the
    /// account's bucket when there is one, else the next in rotation.
    pub fn order(&mut self, bucket: Option<u64>) -> Vec<usize> {
        let n = self.nodes.len();
        if n == 0 {
            return Vec::new();
        }
        let start = match bucket {
            Some(b) => (b % n as u64) as usize,
            None => {
                self.next = self.next.wrapping_add(1);
                (self.next - 1) % n
            }
        };
        let rotated = (0..n).map(|k| (start + k) % n);
        let (up, down): (Vec<usize>, Vec<usize>) = rotated.partition(|i| self.nodes[*i].up);
        up.into_iter().chain(down).collect()
    }

    /// It answered (a request or a health check).
    pub fn answered(&mut self, i: usize, height: Option<u64>) {
        if let Some(n) = self.nodes.get_mut(i) {
            n.up = true;
            n.failures = 0;
            if height.is_some() {
                n.height = height;
            }
        }
    }

    /// It did not answer: down until it answers again.
    pub fn failed(&mut self, i: usize) {
        if let Some(n) = self.nodes.get_mut(i) {
            n.up = false;
            n.failures = n.failures.saturating_add(1);
        }
    }

    /// The highest height any validator reported.
    pub fn height(&self) -> Option<u64> {
        self.nodes.iter().filter_map(|n| n.height).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_rotate_over_healthy_validators_and_fail_over() {
        let mut p = Pool::new(&["a".into(), "b".into(), "c".into()]);
        assert_eq!(p.order(None), vec![0, 1, 2]);
        assert_eq!(p.order(None), vec![1, 2, 0]);
        // An account always starts at its own validator.
        assert_eq!(p.order(Some(7)), vec![1, 2, 0]);
        assert_eq!(p.order(Some(7)), vec![1, 2, 0]);
        p.failed(1);
        // The down one goes last, never first: its accounts fail over to the next.
        assert_eq!(p.order(Some(7)), vec![2, 0, 1]);
        assert_eq!(p.order(None), vec![2, 0, 1]);
        assert_eq!(p.order(None), vec![0, 2, 1]);
        p.answered(1, Some(9));
        assert_eq!(p.order(Some(7)), vec![1, 2, 0]);
        assert_eq!(p.height(), Some(9));
        assert_eq!(p.nodes()[1].failures, 0);
        assert!(Pool::new(&[]).order(None).is_empty());
    }
}
