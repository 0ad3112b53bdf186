//! The `xmc` binary itself: help, exit codes and error text a user sees.

use std::process::Command;

fn xmc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xmc"))
}

#[test]
fn help_lists_every_subcommand() {
    let out = xmc().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // Every subcommand the parser knows, each on its own line of the help with its summary.
    use clap::CommandFactory;
    let commands: Vec<String> = xmc::cli::Cli::command().get_subcommands().map(|c| c.get_name().to_string()).filter(|n| n != "help").collect();
    assert_eq!(commands.len(), 10, "{commands:?}");
    for cmd in ["data", "experiment", "sweep", "compare", "train", "predict", "evaluate", "calibrate", "serve", "labels"] {
        assert!(commands.iter().any(|c| c == cmd), "{cmd} is not a subcommand: {commands:?}");
        let line = text.lines().find(|l| l.trim_start().starts_with(&format!("{cmd} "))).unwrap_or_else(|| panic!("{cmd} is not in --help:\n{text}"));
        assert!(line.split_whitespace().count() > 2, "{cmd} has no summary: {line}");
    }
    let out = xmc().args(["data", "prepare", "--help"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("--skip-bad-rows") && text.contains("--print-config"), "{text}");
}

#[test]
fn a_bad_row_fails_with_file_line_and_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.csv"), "id,title,price,category_path\n1,A,£1,X > Y\n2,B,lots,X > Z\n").unwrap();
    std::fs::write(
        dir.path().join("d.toml"),
        "name = \"t\"\npath = \"p.csv\"\nrelative_to = \"descriptor\"\n[columns]\nid = \"id\"\ntitle = \"title\"\nprice = \"price\"\ncategory_path = \"category_path\"\n",
    )
    .unwrap();
    let out = xmc()
        .args(["data", "prepare", "--dataset"])
        .arg(dir.path().join("d.toml"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("p.csv:3") && err.contains("`lots`") && err.contains("--skip-bad-rows"), "{err}");
    assert!(!dir.path().join("out").exists());
}

#[test]
fn a_missing_descriptor_is_a_clear_error() {
    let out = xmc().args(["data", "prepare", "--dataset", "no/such.toml", "--out", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no/such.toml"), "{err}");
}

#[test]
fn print_config_prints_every_section_of_the_default_config() {
    let out = xmc().args(["experiment", "--print-config"]).output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let default = xmc_pipeline::ExperimentConfig::default();
    // Every table of the default config, nested ones (`data.split`, `ranker.tfidf`, ...) included.
    fn tables(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (key, value) in table {
            if let toml::Value::Table(inner) = value {
                let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                out.push(name.clone());
                tables(&name, inner, out);
            }
        }
    }
    let mut sections = Vec::new();
    tables("", &toml::Table::try_from(&default).unwrap(), &mut sections);
    assert!(sections.len() >= 13 && sections.iter().any(|s| s == "data.split"), "{sections:?}");
    for section in &sections {
        assert!(printed.contains(&format!("[{section}]")), "[{section}] is not printed:\n{printed}");
    }
    // What is printed is the default config itself: read back, it prints the same.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("printed.toml");
    std::fs::write(&path, &printed).unwrap();
    let back = xmc_pipeline::ExperimentConfig::load(&path, &[]).unwrap();
    assert_eq!(back.to_toml(), default.to_toml());
}
