//! Delay and reordering of packets in userspace, for kernels without netem.
//!
//! Packet filter rules send chosen packets to an NFQUEUE; a [`Delayer`] thread, living in
//! the same network namespace, takes each packet and lets it go (an ACCEPT verdict) after
//! its own delay, drawn uniformly from `delay ± jitter` with a seeded generator. Packets
//! leave in the order of their due times, not of arrival, so a jitter larger than the gap
//! between two packets reorders them, as netem's jitter does. Nothing is dropped: at the
//! end every held packet is let go.
//!
//! The thread enters the namespace with `setns` (which moves only the calling thread)
//! before it opens the netlink socket, so the queue it binds is the namespace's own. The
//! rules should use `--queue-bypass`, so that packets pass while no delayer is bound.

use std::collections::BinaryHeap;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::error::{HarnessError, Result};

/// Most packets held at once; beyond it a packet is let go at once (bounded memory).
const MAX_HELD: usize = 65_536;
/// How often the thread looks for packets that are due, at most.
const TICK: Duration = Duration::from_millis(1);

/// A packet held until `due` (ordered by due time, earliest first).
struct Held {
    due: Instant,
    seq: u64,
    msg: nfq::Message,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // BinaryHeap is a max-heap: the earliest due time must compare greatest.
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// A running delayer; dropping it lets every held packet go and stops the thread.
#[derive(Debug)]
pub struct Delayer {
    stop: Arc<AtomicBool>,
    delayed: Arc<AtomicU64>,
    reordered: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Delayer {
    /// Starts delaying the packets queued to NFQUEUE `queue` in the network namespace of
    /// process `netns_pid`; returns once the queue is bound.
    pub fn start(
        netns_pid: u32,
        queue: u16,
        delay: Duration,
        jitter: Duration,
        seed: u64,
    ) -> Result<Delayer> {
        let ns = std::fs::File::open(format!("/proc/{netns_pid}/ns/net")).map_err(|e| {
            HarnessError::io(format!("opening the network namespace of {netns_pid}"), e)
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let delayed = Arc::new(AtomicU64::new(0));
        let reordered = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::result::Result<(), String>>();
        let (s, d, r) = (stop.clone(), delayed.clone(), reordered.clone());
        let thread = std::thread::Builder::new()
            .name(format!("netdelay-{netns_pid}"))
            .spawn(move || {
                let setup = (|| -> std::result::Result<nfq::Queue, String> {
                    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| format!("entering the network namespace: {e}"))?;
                    let mut q = nfq::Queue::open().map_err(|e| format!("opening NFQUEUE: {e}"))?;
                    q.bind(queue)
                        .map_err(|e| format!("binding NFQUEUE {queue}: {e}"))?;
                    let _ = q.set_copy_range(queue, 64);
                    let _ = q.set_fail_open(queue, true);
                    q.set_nonblocking(true);
                    Ok(q)
                })();
                let mut q = match setup {
                    Ok(q) => {
                        let _ = ready_tx.send(Ok(()));
                        q
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                run(&mut q, delay, jitter, seed, &s, &d, &r);
                let _ = q.unbind(queue);
            })
            .map_err(|e| HarnessError::io("starting the delay thread", e))?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(Delayer {
                stop,
                delayed,
                reordered,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(HarnessError::Invalid(format!("packet delay: {e}")))
            }
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                Err(HarnessError::Invalid(
                    "packet delay: the delay thread did not bind its queue within 10 s".into(),
                ))
            }
        }
    }

    /// Packets delayed so far.
    pub fn delayed(&self) -> u64 {
        self.delayed.load(Ordering::Relaxed)
    }

    /// Packets let go before one that arrived earlier.
    pub fn reordered(&self) -> u64 {
        self.reordered.load(Ordering::Relaxed)
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The delay loop: takes what is queued, lets go what is due, until `stop`; then lets
/// everything go.
fn run(
    q: &mut nfq::Queue,
    delay: Duration,
    jitter: Duration,
    seed: u64,
    stop: &AtomicBool,
    delayed: &AtomicU64,
    reordered: &AtomicU64,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut held: BinaryHeap<Held> = BinaryHeap::new();
    let (mut seq, mut last_out) = (0u64, None::<u64>);
    let lo = delay.saturating_sub(jitter);
    let hi = delay + jitter;
    let release = |q: &mut nfq::Queue, mut h: Held, last_out: &mut Option<u64>| {
        if last_out.is_some_and(|l| h.seq < l) {
            reordered.fetch_add(1, Ordering::Relaxed);
        }
        *last_out = Some(last_out.map_or(h.seq, |l| l.max(h.seq)));
        h.msg.set_verdict(nfq::Verdict::Accept);
        let _ = q.verdict(h.msg);
    };
    while !stop.load(Ordering::Relaxed) {
        // Take everything queued now.
        while let Ok(msg) = q.recv() {
            let wait = if hi > lo { rng.gen_range(lo..=hi) } else { lo };
            let h = Held {
                due: Instant::now() + wait,
                seq,
                msg,
            };
            seq += 1;
            delayed.fetch_add(1, Ordering::Relaxed);
            if held.len() >= MAX_HELD {
                release(q, h, &mut last_out);
            } else {
                held.push(h);
            }
        }
        let now = Instant::now();
        while held.peek().is_some_and(|h| h.due <= now) {
            if let Some(h) = held.pop() {
                release(q, h, &mut last_out);
            }
        }
        std::thread::sleep(TICK);
    }
    while let Some(h) = held.pop() {
        release(q, h, &mut last_out);
    }
}
