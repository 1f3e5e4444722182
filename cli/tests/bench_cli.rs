//! `gauntlet bench` from the outside: bad input is one line on stderr and exit code 2.

use std::process::Command;

fn gauntlet(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(args)
        .output()
        .expect("gauntlet runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_bench_input_exits_2_with_one_line() {
    for (args, expect) in [
        (
            &["bench", "--clients", "0", "put"][..],
            "--clients must be at least 1",
        ),
        (
            &["bench", "put", "--val-size", "99999999"][..],
            "--val-size",
        ),
        (
            &[
                "--endpoints",
                "127.0.0.1:1",
                "--dial-timeout",
                "300ms",
                "bench",
                "put",
                "--total",
                "5",
            ][..],
            "cannot connect",
        ),
        (
            &["--endpoints", "127.0.0.1:1", "bench", "--auth", "put"][..],
            "--auth turns auth on in clusters gauntlet launches",
        ),
        (
            &[
                "bench",
                "--auth",
                "compare",
                "--a",
                "endpoints:127.0.0.1:1",
                "--b",
                "reference",
                "put",
            ][..],
            "for `endpoints:127.0.0.1:1` use --user",
        ),
    ] {
        let (code, err) = gauntlet(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}

/// `--out`, `--plots` and the `--baseline` gate through the binary, against a 1-member
/// etcd 3.5.1 that `gauntlet bench` launches itself.
#[test]
fn baseline_gate_exits_1_on_regression_and_0_within_tolerance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("base.json");
    let plots = dir.path().join("plots");
    let launch = [
        "bench",
        "--target",
        "etcd@3.5.1",
        "--members",
        "1",
        "--clients",
        "4",
    ];
    let mut args: Vec<&str> = launch.to_vec();
    let (b, p) = (base.to_str().unwrap(), plots.to_str().unwrap());
    args.extend(["--out", b, "--plots", p, "put", "--total", "200"]);
    let (code, err) = gauntlet(&args);
    assert_eq!(code, 0, "{err}");
    for f in ["throughput.svg", "latency.svg", "cdf.svg", "index.html"] {
        assert!(plots.join(f).exists(), "{f} missing");
    }

    // Within a generous tolerance the same workload passes.
    let mut args: Vec<&str> = launch.to_vec();
    args.extend([
        "--baseline",
        b,
        "--tolerance",
        "100000",
        "put",
        "--total",
        "200",
    ]);
    let (code, err) = gauntlet(&args);
    assert_eq!(code, 0, "{err}");

    // A baseline 1000x faster makes this run a regression.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    let rps = json["ops"][0]["requests_per_s"].as_f64().unwrap();
    json["ops"][0]["requests_per_s"] = (rps * 1000.0).into();
    std::fs::write(&base, serde_json::to_string(&json).unwrap()).unwrap();
    let mut args: Vec<&str> = launch.to_vec();
    args.extend(["--baseline", b, "put", "--total", "200"]);
    let (code, err) = gauntlet(&args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("REGRESSION"), "{err}");
}
