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
    for cmd in ["data", "experiment", "sweep", "compare"] {
        assert!(text.contains(cmd), "{text}");
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
