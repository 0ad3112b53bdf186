//! The set of record ids seen so far, with the line each was first used at, in little memory:
//! the ids' bytes in one buffer and a hash table of (position, 32-bit hash) into it, compared by
//! the ids themselves, so the answer is exact. Per id: its bytes, 8 bytes of offset, 8 of line and
//! a 9-byte table slot (at most twice over), instead of a `String` (24 bytes and a heap
//! allocation) and a line in a `HashMap` slot. The table never reads the ids to grow, and reads
//! one only when its 32-bit hash matches, so it stays fast when the ids no longer fit in cache.
//!
//! The positions follow insertion order, so [`IdIndex::into_lines`] gives the line of every
//! inserted id in the order they were inserted.

use std::hash::BuildHasher;

use hashbrown::HashTable;

#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    /// (position into `ends` / `lines`, the id's 32-bit hash).
    table: HashTable<(u32, u32)>,
    /// Every id's bytes, one after another; id `k` ends at `ends[k]`.
    bytes: String,
    ends: Vec<u64>,
    lines: Vec<u64>,
}

/// The id's 32-bit hash, kept in the table (FxHash: fast, and the same in every process).
fn hash32(id: &str) -> u32 {
    let h = rustc_hash::FxBuildHasher.hash_one(id);
    (h ^ (h >> 32)) as u32
}

/// The table's 64-bit hash of a 32-bit one (spread over the high bits the table's tags use).
fn spread(h: u32) -> u64 {
    (h as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn id_at<'a>(bytes: &'a str, ends: &[u64], k: u32) -> &'a str {
    let k = k as usize;
    let start = if k == 0 { 0 } else { ends[k - 1] as usize };
    &bytes[start..ends[k] as usize]
}

impl IdIndex {
    /// The line `id` was first used at, if it was.
    #[cfg(test)]
    pub fn first_line(&self, id: &str) -> Option<u64> {
        let h = hash32(id);
        self.table.find(spread(h), |&(k, hk)| hk == h && id_at(&self.bytes, &self.ends, k) == id).map(|&(k, _)| self.lines[k as usize])
    }

    /// The line `id` was first used at, if it was; else, when `insert`, records it as used at
    /// `line`. One probe of the table for both.
    pub fn first_line_or_insert(&mut self, id: &str, line: u64, insert: bool) -> Option<u64> {
        let h = hash32(id);
        let (bytes, ends) = (&self.bytes, &self.ends);
        match self.table.entry(spread(h), |&(k, hk)| hk == h && id_at(bytes, ends, k) == id, |&(_, hj)| spread(hj)) {
            hashbrown::hash_table::Entry::Occupied(e) => Some(self.lines[e.get().0 as usize]),
            hashbrown::hash_table::Entry::Vacant(e) => {
                if insert {
                    let k = u32::try_from(self.lines.len()).expect("at most 2^32 records");
                    e.insert((k, h));
                    self.push(id, line);
                }
                None
            }
        }
    }

    fn push(&mut self, id: &str, line: u64) -> u32 {
        let k = u32::try_from(self.lines.len()).expect("at most 2^32 records");
        self.bytes.push_str(id);
        self.ends.push(self.bytes.len() as u64);
        self.lines.push(line);
        k
    }

    /// The line of every inserted id, in insertion order.
    pub fn into_lines(self) -> Vec<u64> {
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_with_their_first_line() {
        let mut index = IdIndex::default();
        for i in 0..10_000u64 {
            let id = format!("id-{i}");
            assert_eq!(index.first_line(&id), None);
            assert_eq!(index.first_line_or_insert(&id, 2 * i + 1, true), None);
        }
        index.first_line_or_insert("", 7, true);
        assert_eq!(index.first_line("id-0"), Some(1));
        assert_eq!(index.first_line("id-9999"), Some(19_999));
        assert_eq!(index.first_line(""), Some(7));
        assert_eq!(index.first_line("id-10000"), None);
        assert_eq!(index.first_line("id-"), None, "a prefix of stored bytes is not an id");
        assert_eq!(index.first_line_or_insert("new", 5, false), None);
        assert_eq!(index.first_line("new"), None, "not inserted when told not to");
        assert_eq!(index.first_line_or_insert("new", 5, true), None);
        assert_eq!(index.first_line_or_insert("new", 6, true), Some(5));
        assert_eq!(index.first_line_or_insert("id-2", 6, true), Some(5));
        let lines = index.into_lines();
        assert_eq!((lines.len(), lines[3], lines[10_000], lines[10_001]), (10_002, 7, 7, 5));
    }
}
