//! The set of record ids seen so far, with the line each was first used at, in little memory:
//! the ids' bytes in one buffer and a table from each id's 64-bit hash to its position. Two
//! different ids with the same hash (about one pair in 10^5 at 1.7 x 10^7 ids) go to a small
//! overflow map, so the answer is always exact.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    /// Hash of an id -> its position in `ends` / `lines`.
    table: HashMap<u64, u32>,
    /// Every id's bytes, one after another; id `k` ends at `ends[k]`.
    bytes: String,
    ends: Vec<u64>,
    lines: Vec<u64>,
    /// Ids whose hash was already taken by another id.
    overflow: HashMap<String, u64>,
}

fn hash(id: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id)
}

impl IdIndex {
    fn id(&self, k: u32) -> &str {
        let k = k as usize;
        let start = if k == 0 { 0 } else { self.ends[k - 1] as usize };
        &self.bytes[start..self.ends[k] as usize]
    }

    /// The line `id` was first used at, if it was.
    pub fn first_line(&self, id: &str) -> Option<u64> {
        match self.table.get(&hash(id)) {
            Some(&k) if self.id(k) == id => Some(self.lines[k as usize]),
            Some(_) => self.overflow.get(id).copied(),
            None => None,
        }
    }

    /// Records `id` as used at `line` (the caller has checked [`Self::first_line`]).
    pub fn insert(&mut self, id: &str, line: u64) {
        let h = hash(id);
        if self.table.contains_key(&h) {
            self.overflow.insert(id.to_string(), line);
            return;
        }
        let k = u32::try_from(self.lines.len()).expect("at most 2^32 records");
        self.bytes.push_str(id);
        self.ends.push(self.bytes.len() as u64);
        self.lines.push(line);
        self.table.insert(h, k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_with_their_first_line_and_collisions_stay_exact() {
        let mut index = IdIndex::default();
        for (i, id) in ["a", "bb", "", "ccc"].iter().enumerate() {
            assert_eq!(index.first_line(id), None);
            index.insert(id, 10 + i as u64);
        }
        assert_eq!(index.first_line("bb"), Some(11));
        assert_eq!(index.first_line(""), Some(12));
        assert_eq!(index.first_line("b"), None);
        // A forced collision: an id whose hash is taken by another goes to the overflow map.
        let k = index.table[&hash("a")];
        index.table.insert(hash("zz"), k);
        assert_eq!(index.first_line("zz"), None, "same hash, different id: not seen");
        index.insert("zz", 99);
        assert_eq!(index.first_line("zz"), Some(99));
        assert_eq!(index.first_line("a"), Some(10));
    }
}
