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
