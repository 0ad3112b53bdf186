//! A trie over token sequences (label codes, or label names as token ids) that tells a decoder
//! which tokens may follow a prefix, so that only real labels are generated.

use serde::{Deserialize, Serialize};

use crate::error::{CodesError, Result};

/// What a constrained decoder asks at every step. The model crate takes this trait, not the trie,
/// so tests can drive a decoder with a hand-written constraint.
pub trait PrefixConstraint {
    /// The tokens that may follow `prefix`, sorted; empty when `prefix` is complete or invalid.
    fn allowed_next(&self, prefix: &[u32]) -> &[u32];
    /// The label whose sequence is exactly `prefix`.
    fn label_of(&self, sequence: &[u32]) -> Option<u32>;
    fn is_complete(&self, prefix: &[u32]) -> bool {
        self.label_of(prefix).is_some()
    }
    /// When exactly one label's sequence starts with `prefix`: that label and the tokens that
    /// complete its sequence (empty when `prefix` is the whole sequence). A decoder may stop
    /// there: every further token is forced.
    fn unique_completion(&self, _prefix: &[u32]) -> Option<(u32, Vec<u32>)> {
        None
    }
    /// Every token that occurs in some sequence, sorted; `None` when not known. A decoder may
    /// normalise its scores over these tokens only.
    fn alphabet(&self) -> Option<Vec<u32>> {
        None
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct TrieNode {
    /// Sorted next tokens, and the node each leads to.
    tokens: Vec<u32>,
    next: Vec<u32>,
    label: Option<u32>,
}

/// A prefix-free set of sequences, each naming a label. A sequence that is a prefix of another is
/// refused (the decoder could not tell where it ends): for plain-text labels, end every sequence
/// with the end-of-sequence token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixTrie {
    nodes: Vec<TrieNode>,
    len: usize,
}

impl Default for PrefixTrie {
    fn default() -> Self {
        PrefixTrie { nodes: vec![TrieNode::default()], len: 0 }
    }
}

impl PrefixTrie {
    /// A trie over label codes: `codes[label]` is that label's code.
    pub fn from_codes(codes: &[Vec<u32>]) -> Result<Self> {
        let mut trie = PrefixTrie::default();
        for (label, code) in codes.iter().enumerate() {
            trie.insert(code, label as u32)?;
        }
        Ok(trie)
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn insert(&mut self, sequence: &[u32], label: u32) -> Result<()> {
        let invalid = |reason: &str| Err(CodesError::InvalidCode { code: sequence.to_vec(), reason: reason.into() });
        if sequence.is_empty() {
            return invalid("an empty code names no label");
        }
        let mut node = 0usize;
        for &token in sequence {
            if let Some(other) = self.nodes[node].label {
                return invalid(&format!("label {other}'s code is a prefix of it"));
            }
            node = match self.nodes[node].tokens.binary_search(&token) {
                Ok(i) => self.nodes[node].next[i] as usize,
                Err(i) => {
                    let child = self.nodes.len();
                    self.nodes.push(TrieNode::default());
                    self.nodes[node].tokens.insert(i, token);
                    self.nodes[node].next.insert(i, child as u32);
                    child
                }
            };
        }
        if let Some(other) = self.nodes[node].label {
            return invalid(&format!("label {other} has the same code"));
        }
        if !self.nodes[node].tokens.is_empty() {
            return invalid("it is a prefix of another label's code");
        }
        self.nodes[node].label = Some(label);
        self.len += 1;
        Ok(())
    }

    fn find(&self, prefix: &[u32]) -> Option<&TrieNode> {
        let mut node = &self.nodes[0];
        for token in prefix {
            let i = node.tokens.binary_search(token).ok()?;
            node = &self.nodes[node.next[i] as usize];
        }
        Some(node)
    }

    /// Every (sequence, label) pair, in token order.
    pub fn sequences(&self) -> Vec<(Vec<u32>, u32)> {
        let mut out = Vec::with_capacity(self.len);
        let mut stack = vec![(0usize, Vec::new())];
        while let Some((node, prefix)) = stack.pop() {
            let n = &self.nodes[node];
            if let Some(label) = n.label {
                out.push((prefix.clone(), label));
            }
            for (token, next) in n.tokens.iter().zip(&n.next).rev() {
                let mut p = prefix.clone();
                p.push(*token);
                stack.push((*next as usize, p));
            }
        }
        out
    }
}

impl PrefixConstraint for PrefixTrie {
    fn allowed_next(&self, prefix: &[u32]) -> &[u32] {
        self.find(prefix).map_or(&[], |n| n.tokens.as_slice())
    }

    fn label_of(&self, sequence: &[u32]) -> Option<u32> {
        self.find(sequence)?.label
    }

    fn unique_completion(&self, prefix: &[u32]) -> Option<(u32, Vec<u32>)> {
        let mut node = self.find(prefix)?;
        let mut rest = Vec::new();
        loop {
            if let Some(label) = node.label {
                return Some((label, rest));
            }
            if node.tokens.len() != 1 {
                return None;
            }
            rest.push(node.tokens[0]);
            node = &self.nodes[node.next[0] as usize];
        }
    }

    fn alphabet(&self) -> Option<Vec<u32>> {
        let mut tokens: Vec<u32> = self.nodes.iter().flat_map(|n| n.tokens.iter().copied()).collect();
        tokens.sort_unstable();
        tokens.dedup();
        Some(tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exactly_the_inserted_codes() {
        let codes = vec![vec![0, 0], vec![2, 0], vec![1], vec![0, 1]];
        let trie = PrefixTrie::from_codes(&codes).unwrap();
        assert_eq!(trie.len(), 4);
        assert_eq!(trie.allowed_next(&[]), &[0, 1, 2]);
        assert_eq!(trie.allowed_next(&[0]), &[0, 1]);
        assert_eq!(trie.allowed_next(&[1]), &[] as &[u32]);
        assert_eq!(trie.allowed_next(&[3]), &[] as &[u32]);
        assert_eq!(trie.label_of(&[2, 0]), Some(1));
        assert_eq!(trie.label_of(&[2]), None);
        assert!(trie.is_complete(&[1]));
        assert!(!trie.is_complete(&[0]));
        let mut all = trie.sequences();
        all.sort();
        assert_eq!(all, vec![(vec![0, 0], 0), (vec![0, 1], 3), (vec![1], 2), (vec![2, 0], 1)]);
    }

    #[test]
    fn unique_completions_and_the_alphabet() {
        // 9 ends every sequence, as `</s>` does.
        let trie = PrefixTrie::from_codes(&[vec![0, 1, 9], vec![0, 2, 9], vec![3, 4, 5, 9]]).unwrap();
        assert_eq!(trie.unique_completion(&[0, 1]), Some((0, vec![9])));
        assert_eq!(trie.unique_completion(&[0, 1, 9]), Some((0, vec![])));
        assert_eq!(trie.unique_completion(&[3]), Some((2, vec![4, 5, 9])));
        assert_eq!(trie.unique_completion(&[0]), None, "two labels start with 0");
        assert_eq!(trie.unique_completion(&[]), None);
        assert_eq!(trie.unique_completion(&[8]), None, "no label starts with 8");
        assert_eq!(trie.alphabet(), Some(vec![0, 1, 2, 3, 4, 5, 9]));
    }

    #[test]
    fn refuses_invalid_codes() {
        let mut trie = PrefixTrie::from_codes(&[vec![0, 1]]).unwrap();
        assert!(trie.insert(&[0, 1], 1).unwrap_err().to_string().contains("same code"));
        assert!(trie.insert(&[0], 1).unwrap_err().to_string().contains("prefix of another"));
        assert!(trie.insert(&[0, 1, 4], 1).unwrap_err().to_string().contains("is a prefix of it"));
        assert!(trie.insert(&[], 1).is_err());
        assert_eq!(trie.len(), 1);
    }

    #[test]
    fn walking_allowed_tokens_reaches_every_label_and_nothing_else() {
        let codes: Vec<Vec<u32>> = (0..30u32).map(|i| vec![i % 3, (i / 3) % 5, i / 15]).collect();
        let trie = PrefixTrie::from_codes(&codes).unwrap();
        let mut found = Vec::new();
        let mut stack = vec![Vec::new()];
        while let Some(prefix) = stack.pop() {
            if let Some(label) = trie.label_of(&prefix) {
                found.push(label);
            }
            for &t in trie.allowed_next(&prefix) {
                let mut p = prefix.clone();
                p.push(t);
                stack.push(p);
            }
        }
        found.sort();
        assert_eq!(found, (0..30).collect::<Vec<_>>());
    }
}
