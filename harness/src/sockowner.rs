//! Which process dialed a loopback TCP connection (Linux `/proc`).
//!
//! Every member of a local cluster dials its peers from 127.0.0.1, so a proxy in front
//! of a member's peer port cannot tell from the address alone which member a
//! connection comes from. The kernel can: the dialer's socket is the row of
//! `/proc/net/tcp` (or `tcp6`) whose *local* address is the connection's remote
//! address and whose *remote* address is the proxy's listen address; its inode names
//! the socket, and the process holding `socket:[inode]` among its file descriptors is
//! the dialer. The chaos suite uses this to cut single links between members (a full
//! partition), which one proxy per member could not do otherwise.
//!
//! Contract: [`owner`] answers `None` rather than guessing — when `/proc` is missing
//! (not Linux), the row is gone (the dialer closed already) or no candidate holds it.

use std::net::SocketAddr;
use std::path::Path;

/// The `/proc/net/tcp` form of an address: the IP as the kernel's in-memory words in
/// hex, a colon, the port in hex.
fn proc_form(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        ),
        SocketAddr::V6(a) => {
            let o = a.ip().octets();
            let words: String = o
                .chunks(4)
                .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            format!("{words}:{:04X}", a.port())
        }
    }
}

/// The inode of the socket whose local address is `local` and remote address `remote`.
fn inode_of(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let table = if local.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let text = std::fs::read_to_string(table).ok()?;
    let (want_local, want_remote) = (proc_form(local), proc_form(remote));
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
        if f.len() > 9 && f[1] == want_local && f[2] == want_remote {
            f[9].parse().ok()
        } else {
            None
        }
    })
}

/// `pid` and every process below it (a launcher script's server, for instance).
fn with_descendants(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    // Bounded: process trees here are a handful deep.
    while i < out.len() && out.len() < 256 {
        let p = out[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                if let Ok(kids) = std::fs::read_to_string(t.path().join("children")) {
                    out.extend(
                        kids.split_whitespace()
                            .filter_map(|k| k.parse::<u32>().ok()),
                    );
                }
            }
        }
        i += 1;
    }
    out
}

fn holds(pid: u32, needle: &str) -> bool {
    let Ok(fds) = std::fs::read_dir(Path::new("/proc").join(pid.to_string()).join("fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == std::ffi::OsStr::new(needle))
    })
}

/// Which of `candidates` (label, pid) dialed the connection that arrived at `listen`
/// from `peer`. See the module docs.
pub fn owner(peer: SocketAddr, listen: SocketAddr, candidates: &[(String, u32)]) -> Option<String> {
    let inode = inode_of(peer, listen)?;
    if inode == 0 {
        return None;
    }
    let needle = format!("socket:[{inode}]");
    candidates
        .iter()
        .find(|(_, pid)| {
            with_descendants(*pid)
                .into_iter()
                .any(|p| holds(p, &needle))
        })
        .map(|(label, _)| label.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_the_kernel_form() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        // 127.0.0.1 in memory on a little-endian machine reads 0100007F.
        if cfg!(target_endian = "little") {
            assert_eq!(proc_form(a), "0100007F:1F90");
        }
        let b: SocketAddr = "[::1]:1".parse().unwrap();
        assert!(proc_form(b).ends_with(":0001"));
        assert_eq!(proc_form(b).len(), 32 + 5);
    }

    #[test]
    fn the_dialing_process_is_found_and_others_are_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = l.local_addr().unwrap();
        let _dialed = std::net::TcpStream::connect(listen).unwrap();
        let (_accepted, peer) = l.accept().unwrap();
        let me = std::process::id();
        let mut other = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let candidates = vec![("other".to_string(), other.id()), ("me".to_string(), me)];
        assert_eq!(owner(peer, listen, &candidates), Some("me".to_string()));
        assert_eq!(owner(peer, listen, &candidates[..1]), None);
        // A connection that does not exist has no owner.
        let nowhere: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(owner(nowhere, listen, &candidates), None);
        let _ = other.kill();
        let _ = other.wait();
    }
}
