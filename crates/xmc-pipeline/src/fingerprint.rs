//! Content hashes that decide whether a stage's inputs changed.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file's content.
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of a value's canonical JSON (struct fields in declaration order, maps sorted).
pub fn value_sha256(value: &impl serde::Serialize) -> String {
    let json = serde_json::to_vec(value).expect("config values serialise");
    hex(&Sha256::digest(&json))
}

/// SHA-256 over every file under `dir` (relative path and content, in path order): a model
/// folder's identity.
pub fn folder_sha256(dir: &Path) -> Result<String> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(true) {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if !entry.file_type().is_dir() {
            files.push(entry.into_path());
        }
    }
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.strip_prefix(dir).unwrap_or(&file).to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(file_sha256(&file)?.as_bytes());
    }
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_hash_is_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(file_sha256(&path).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn folder_hash_covers_names_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), "1").unwrap();
        std::fs::write(dir.path().join("sub/b"), "2").unwrap();
        let first = folder_sha256(dir.path()).unwrap();
        assert_eq!(first, folder_sha256(dir.path()).unwrap());
        std::fs::write(dir.path().join("sub/b"), "3").unwrap();
        let changed = folder_sha256(dir.path()).unwrap();
        assert_ne!(first, changed);
        std::fs::rename(dir.path().join("a"), dir.path().join("c")).unwrap();
        assert_ne!(changed, folder_sha256(dir.path()).unwrap());
    }

    #[test]
    fn value_hash_changes_with_the_value() {
        assert_eq!(value_sha256(&(1, "a")), value_sha256(&(1, "a")));
        assert_ne!(value_sha256(&(1, "a")), value_sha256(&(2, "a")));
    }
}
