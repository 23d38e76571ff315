//! The workspace's one bounded map: the newest `max` keys, the oldest
//! forgotten first. Every table keyed by something peers or clients create
//! needs a bound (docs/LEARNINGS.md); this is the helper they share.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A map of at most `max` entries in insertion order: inserting a new key
/// past the bound forgets the oldest; replacing a key's value keeps its
/// place. `max == 0` keeps nothing.
#[derive(Debug, Clone)]
pub struct FifoMap<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    max: usize,
}

impl<K: Eq + Hash + Clone, V> FifoMap<K, V> {
    pub fn new(max: usize) -> FifoMap<K, V> {
        FifoMap {
            map: HashMap::new(),
            order: VecDeque::new(),
            max,
        }
    }

    pub fn insert(&mut self, key: K, value: V) {
        if self.max == 0 {
            return;
        }
        if self.map.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.max {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::FifoMap;

    #[test]
    fn the_oldest_key_is_forgotten_first_and_a_replaced_value_keeps_its_place() {
        let mut m = FifoMap::new(3);
        for k in 0..3 {
            m.insert(k, k * 10);
        }
        m.insert(0, 1);
        assert_eq!((m.len(), m.get(&0)), (3, Some(&1)), "replaced in place");
        m.insert(3, 30);
        assert!(!m.contains_key(&0), "0 was the oldest, whatever its value");
        assert_eq!(
            (1..4).map(|k| m.get(&k).copied()).collect::<Vec<_>>(),
            [Some(10), Some(20), Some(30)]
        );
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn a_bound_of_zero_keeps_nothing() {
        let mut m = FifoMap::new(0);
        m.insert("a", 1);
        assert!(m.is_empty() && m.get(&"a").is_none());
    }
}
