//! `gauntlet check` end to end: verdicts on the shared porcupine data, exit codes, bad input, HTML.

use std::path::PathBuf;
use std::process::Command;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/porcupine/test_data"
);

fn data(rel: &str) -> PathBuf {
    let p = PathBuf::from(DATA).join(rel);
    assert!(
        p.exists(),
        "shared test data missing: {} (clone ../shared beside the repo)",
        p.display()
    );
    p
}

fn gauntlet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("check")
        .args(args)
        .output()
        .expect("run gauntlet");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn linearizable_register_log_exits_0_with_jsonl_verdict() {
    let file = data("jepsen/etcd_002.log");
    let (code, stdout, _) = gauntlet(&[
        "--model",
        "register",
        "--format",
        "jsonl",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}");
    let line: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["verdict"], "linearizable");
    assert_eq!(line["file"], file.to_str().unwrap());
    assert!(line["ops"].as_u64().unwrap() > 0);
    assert!(line["elapsed_ms"].is_u64());
}

#[test]
fn illegal_kv_history_exits_1_and_writes_html() {
    let dir = tempfile::tempdir().unwrap();
    let ok = data("kv/c10-ok.txt");
    let bad = data("kv/c10-bad.txt");
    let html = dir.path().join("html");
    let (code, stdout, _) = gauntlet(&[
        "--model",
        "kv",
        "--html",
        html.to_str().unwrap(),
        ok.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("c10-ok.txt: linearizable"), "{stdout}");
    assert!(stdout.contains("c10-bad.txt: not-linearizable"), "{stdout}");
    let page = std::fs::read_to_string(html.join("c10-bad.txt.html")).unwrap();
    assert!(page.contains("<svg") && page.contains("longest linearizable prefix"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "HTML must be self-contained"
    );
    assert!(!html.join("c10-ok.txt.html").exists());
}

#[test]
fn malformed_line_names_file_and_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.edn");
    std::fs::write(
        &file,
        "{:process 0, :type :invoke, :f :get, :key \"a\", :value nil}\n{:process 0, :type :ok, :f :get, :key \"a\" :value\n",
    )
    .unwrap();
    let (code, stdout, stderr) = gauntlet(&["--model", "kv", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("broken.edn:2:"), "{stderr} {stdout}");
    let (code, stdout, _) =
        gauntlet(&["--model", "kv", "--format", "jsonl", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(line["verdict"], "unknown");
    assert!(line["error"].as_str().unwrap().contains("broken.edn:2:"));
}

#[test]
fn return_without_call_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orphan.log");
    std::fs::write(
        &file,
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 3\t:ok\t:read\t1\n",
    )
    .unwrap();
    let (code, _, stderr) = gauntlet(&["--model", "register", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("orphan.log:2:") && stderr.contains("return without call"),
        "{stderr}"
    );
}

#[test]
fn etcd_json_lines_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etcd.jsonl");
    let lines = [
        r#"{"client_id":1,"call_ns":0,"return_ns":10,"input":{"put":{"key":"a","value":"1"}},"outcome":{"ok":{"put":{"revision":2}}}}"#,
        r#"{"client_id":2,"call_ns":20,"return_ns":30,"input":{"range":{"key":"a"}},"outcome":{"ok":{"range":{"result":{"kvs":[],"count":0,"more":false},"revision":1}}}}"#,
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let (code, stdout, stderr) = gauntlet(&["--model", "etcd", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout} {stderr}");
    assert!(stdout.contains("not-linearizable"));
}
