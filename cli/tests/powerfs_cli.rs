//! `gauntlet powerfs` from the command line: mount, write without fsync, `cut` over the
//! control socket (answered only once the drop happened), the data is gone, synced data
//! stays; bad requests get one `error` line; Ctrl-C unmounts. Needs root and /dev/fuse.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mounted(path: &std::path::Path) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(&*path.to_string_lossy()))
}

fn ask(stream: &mut UnixStream, reader: &mut impl BufRead, request: &str) -> String {
    writeln!(stream, "{request}").unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

#[test]
fn cut_over_the_control_socket_drops_unsynced_data_and_ctrl_c_unmounts() {
    let dir = tempfile::tempdir().unwrap();
    let (backing, mount, control) = (
        dir.path().join("durable"),
        dir.path().join("mnt"),
        dir.path().join("control.sock"),
    );
    std::fs::create_dir_all(&backing).unwrap();
    std::fs::create_dir_all(&mount).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("powerfs")
        .arg("--backing")
        .arg(&backing)
        .arg("--mount")
        .arg(&mount)
        .arg("--control")
        .arg(&control)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !control.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "gauntlet powerfs exited"
        );
        assert!(Instant::now() < deadline, "no control socket within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(mounted(&mount), "not mounted");
    let synced = mount.join("synced");
    let mut f = std::fs::File::create(&synced).unwrap();
    f.write_all(b"kept").unwrap();
    f.sync_all().unwrap();
    drop(f);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&synced)
        .unwrap()
        .write_all(b" and lost")
        .unwrap();
    std::fs::write(mount.join("never-synced"), b"lost").unwrap();

    let mut stream = UnixStream::connect(&control).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let unsynced = ask(&mut stream, &mut reader, "unsynced");
    assert!(
        unsynced.starts_with("ok {") && unsynced.contains("\"files\":2"),
        "{unsynced}"
    );
    let cut = ask(&mut stream, &mut reader, "cut");
    assert!(
        cut.starts_with("ok {") && cut.contains("\"files_dropped\":2"),
        "{cut}"
    );
    assert_eq!(std::fs::read(&synced).unwrap(), b"kept");
    assert_eq!(std::fs::read(mount.join("never-synced")).unwrap(), b"");

    let bad = ask(&mut stream, &mut reader, "faults {\"eio_on_write\":\"[\"}");
    assert!(bad.starts_with("error "), "{bad}");
    let bad = ask(&mut stream, &mut reader, "explode");
    assert!(bad.starts_with("error unknown request"), "{bad}");
    let ok = ask(
        &mut stream,
        &mut reader,
        "faults {\"eio_on_write\":\"synced\"}",
    );
    assert_eq!(ok, "ok");
    let err = std::fs::OpenOptions::new()
        .append(true)
        .open(&synced)
        .unwrap()
        .write_all(b"x")
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(5), "{err}");
    assert_eq!(ask(&mut stream, &mut reader, "clear-faults"), "ok");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(!mounted(&mount), "still mounted after Ctrl-C");
    assert!(!control.exists(), "control socket left behind");
}
