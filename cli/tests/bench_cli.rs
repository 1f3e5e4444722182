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
    ] {
        let (code, err) = gauntlet(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}
