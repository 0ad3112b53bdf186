//! The methods xmc knows, in the order a model folder is told by its files (a fused folder also
//! holds an xr folder's files, so fused is asked first). Adding a method: a file of its own
//! beside the others and one line here.

use std::path::Path;

use anyhow::{Result, bail};

use crate::method::{Method, Model};

/// Every method, in the order folders are recognised.
pub static METHODS: &[&dyn Method] = &[
    &crate::fused::Fused,
    &crate::xr::Xr,
    &crate::cluster_search::ClusterSearch,
    &crate::generative::Generative,
];

/// The method a config names.
pub fn by_name(name: &str) -> Option<&'static dyn Method> {
    METHODS.iter().copied().find(|m| m.name() == name)
}

/// Every method's name, for messages.
pub fn names() -> Vec<&'static str> {
    METHODS.iter().map(|m| m.name()).collect()
}

/// The method whose files `dir` holds.
pub fn detect(dir: &Path) -> Result<&'static dyn Method> {
    if !dir.is_dir() {
        bail!("{}: not a model folder (it does not exist)", dir.display());
    }
    if let Some(m) = METHODS.iter().copied().find(|m| dir.join(m.folder_file()).is_file()) {
        return Ok(m);
    }
    let files: Vec<String> = METHODS.iter().map(|m| format!("`{}` (method {})", m.folder_file(), m.name())).collect();
    bail!("{}: not a model folder: it has none of {}", dir.display(), files.join(", "))
}

/// Loads a model folder of any method, told by its files.
pub fn load(dir: &Path) -> Result<Box<dyn Model>> {
    detect(dir)?.load(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found_back() {
        let names = names();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n), "{n} twice");
            assert_eq!(by_name(n).map(|m| m.name()), Some(*n));
        }
        assert!(by_name("nonsense").is_none());
    }

    #[test]
    fn a_folder_of_no_method_is_refused_naming_every_methods_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = detect(dir.path()).err().unwrap().to_string();
        for m in METHODS {
            assert!(err.contains(m.folder_file()), "{err}");
        }
        let err = detect(&dir.path().join("missing")).err().unwrap().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
