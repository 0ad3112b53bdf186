//! The workspace's shape, from `cargo metadata`: dependencies point one way (xtask -> xmc ->
//! stages -> xmc-data) and the crates ARCHITECTURE.md names as tensor-free do not reach burn.

use std::collections::{BTreeMap, BTreeSet};

use xmc_e2e::repo_root;

/// Each workspace package's normal (non-dev, non-build) dependencies, transitively, by name.
fn reachable() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    // This machine's platform only: a fresh machine has downloaded the crates it builds, not
    // those of other platforms (e.g. chrono's Android dependencies), and --offline cannot fetch them.
    let rustc = std::process::Command::new("rustc").arg("-vV").output().expect("rustc runs");
    let host = String::from_utf8_lossy(&rustc.stdout).lines().find_map(|l| l.strip_prefix("host: ").map(str::to_owned)).expect("rustc -vV names the host");
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host, "--manifest-path"])
        .arg(repo_root().join("Cargo.toml"))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name: BTreeMap<&str, &str> = meta["packages"].as_array().unwrap().iter().map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap())).collect();
    let deps: BTreeMap<&str, Vec<&str>> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let normal = n["deps"].as_array().unwrap().iter().filter(|d| d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null()));
            (n["id"].as_str().unwrap(), normal.map(|d| d["pkg"].as_str().unwrap()).collect())
        })
        .collect();
    meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let (mut seen, mut stack) = (BTreeSet::new(), vec![m.as_str().unwrap()]);
            while let Some(id) = stack.pop() {
                for &d in &deps[id] {
                    if seen.insert(d) {
                        stack.push(d);
                    }
                }
            }
            (name[m.as_str().unwrap()].to_string(), seen.into_iter().map(|id| name[id].to_string()).collect())
        })
        .collect()
}

#[test]
fn dependencies_point_one_way_and_the_tensor_free_crates_do_not_reach_burn() {
    let reach = reachable();
    assert!(reach.len() >= 10, "{:?}", reach.keys());
    for krate in ["xmc-data", "xmc-codes", "xmc-eval", "xmc-ranker", "xmc-brand"] {
        let burn: Vec<_> = reach[krate].iter().filter(|d| d.starts_with("burn")).collect();
        assert!(burn.is_empty(), "{krate} reaches {burn:?}");
    }
    let workspace: BTreeSet<&String> = reach.keys().collect();
    let internal = |krate: &str| reach[krate].iter().filter(|d| workspace.contains(d)).cloned().collect::<BTreeSet<_>>();
    assert!(internal("xmc-data").is_empty(), "xmc-data is the root: {:?}", internal("xmc-data"));
    for (krate, _) in &reach {
        let deps = internal(krate);
        assert!(!deps.contains("xtask"), "{krate} depends on xtask");
        if krate.starts_with("xmc-") && !["xmc-python", "xmc-e2e"].contains(&krate.as_str()) {
            assert!(!deps.contains("xmc"), "the stage crate {krate} depends on the xmc binary crate");
            if krate != "xmc-data" {
                assert!(deps.contains("xmc-data"), "{krate} does not build on xmc-data");
            }
        }
    }
    assert!(internal("xmc").contains("xmc-train") && internal("xtask").contains("xmc"));
    // The methods sit below the runner, the runner below the binary; the Python package links
    // the methods and the runner, not the binary and its HTTP server.
    assert!(!internal("xmc-methods").contains("xmc-pipeline"), "the methods crate depends on the runner");
    assert!(internal("xmc-pipeline").contains("xmc-methods") && internal("xmc").contains("xmc-pipeline"));
    for server in ["xmc", "axum", "clap"] {
        assert!(!reach["xmc-python"].contains(server), "the Python package reaches {server}");
    }
}

/// Every function the Python module exports with arguments (a `#[pyfunction]` or a method with a
/// `#[pyo3(signature ...)]`) runs inside `guarded`, which turns a Rust panic into `xmc.XmcError`.
#[test]
fn every_python_entry_point_runs_inside_the_panic_boundary() {
    let source = std::fs::read_to_string(xmc_e2e::repo_root().join("python/src/lib.rs")).unwrap();
    let mut checked = Vec::new();
    let parts: Vec<&str> = source.split("\n    fn ").flat_map(|p| p.split("\nfn ")).collect();
    for pair in parts.windows(2) {
        let (before, function) = (pair[0], pair[1]);
        let attributes = before.lines().rev().take_while(|l| l.trim_start().starts_with("#[") || l.trim_start().starts_with("///")).collect::<Vec<_>>();
        let exported = attributes.iter().any(|l| l.contains("#[pyfunction]") || l.contains("#[pyo3(signature"));
        if !exported {
            continue;
        }
        let name: String = function.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let body = function.split("\n}").next().unwrap().split("\n    }").next().unwrap();
        assert!(body.contains("guarded("), "python/src/lib.rs: `{name}` does not run inside `guarded`: a panic would escape as PanicException");
        checked.push(name);
    }
    for name in ["load", "predict", "predict_arrow", "train", "_panic_at_the_boundary"] {
        assert!(checked.iter().any(|c| c == name), "{name} not found among {checked:?}");
    }
}
