//! Noticing a target that stops answering while a suite runs.
//!
//! A server under test that dies mid-run is the most important finding a run can
//! make, and the easiest to bury: every later request fails, and a report of two
//! hundred "timeout expired" failures hides the one request that killed it. A
//! [`Monitor`] watches every member of a target while a suite runs, so the suite
//! can stop, name the member and the moment, and report the death once.
//!
//! How a member is declared down ([`Death`]):
//! * a member process the harness launched that **exited on its own** (not stopped by
//!   the harness) is down at once, with its exit status and the tail of its log;
//! * otherwise, a member that leaves [`MonitorConfig::misses`] Status probes in a row
//!   unanswered (each with its own deadline), over at least one
//!   [`MonitorConfig::interval`], is down. A probe the server answers with an error
//!   of its own (auth required, unimplemented) counts as answered. Probes run every
//!   [`MonitorConfig::interval`], and whenever a suite asks ([`Monitor::probe_now`],
//!   e.g. after a case timed out).
//!
//! Only the first death is declared; a suite that recovers (restarts the cluster)
//! starts a new monitor. The monitor's task stops when it is dropped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gauntlet_api::etcdserverpb as pb;
use serde::Serialize;

use crate::client::{Client, ClientConfig};
use crate::cluster::Cluster;
use crate::record::now_ns;

/// Lines of a crashed member's log kept in a [`Death`].
pub const LOG_TAIL_LINES: usize = 30;

/// How a [`Monitor`] probes.
#[derive(Debug, Clone, Copy)]
pub struct MonitorConfig {
    /// Time between probe rounds.
    pub interval: Duration,
    /// Deadline of one Status probe.
    pub probe_timeout: Duration,
    /// Unanswered probes in a row that declare a member down (at least 1).
    pub misses: u32,
}

impl Default for MonitorConfig {
    /// A probe a second, 2 s deadline, down after 3 misses in a row (so a member
    /// that is alive but loaded is not called dead: it would have to leave Status,
    /// etcd's cheapest call, unanswered for several seconds).
    fn default() -> MonitorConfig {
        MonitorConfig {
            interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(2),
            misses: 3,
        }
    }
}

/// A member declared down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Death {
    /// Index of the member in the endpoint list.
    pub member: usize,
    /// Its name (`m1` for launched members, else the endpoint).
    pub name: String,
    /// Its client endpoint.
    pub endpoint: String,
    /// When it was declared down, on the [`now_ns`] clock.
    pub detected_ns: u64,
    /// When it last answered a probe, on the [`now_ns`] clock (`None`: never probed OK).
    pub last_ok_ns: Option<u64>,
    /// How it died: `process exited: signal: 6 (SIGABRT)` or `3 Status probes in a
    /// row unanswered (2000 ms deadline each): ...`.
    pub how: String,
    /// The tail of its log, when the harness launched it (empty otherwise).
    pub log_tail: Vec<String>,
}

#[derive(Debug)]
struct State {
    misses: Vec<u32>,
    /// When the current run of misses began, per member.
    first_miss_ns: Vec<Option<u64>>,
    last_ok_ns: Vec<Option<u64>>,
    last_error: Vec<String>,
    /// Start of the latest round in which every member answered.
    last_full_round_ns: Option<u64>,
    death: Option<Death>,
}

#[derive(Debug)]
struct Inner {
    probes: Vec<Client>,
    names: Vec<String>,
    endpoints: Vec<String>,
    cluster: Option<Arc<Cluster>>,
    config: MonitorConfig,
    state: Mutex<State>,
    declared: tokio::sync::watch::Sender<bool>,
    /// Serialises probe rounds (periodic and on demand).
    round: tokio::sync::Mutex<()>,
}

/// Watches every member of a target; see the module docs.
#[derive(Debug)]
pub struct Monitor {
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Monitor {
    /// Starts watching the endpoints of `config` (one probe client per endpoint, each
    /// connected lazily so that an endpoint already down is reported, not refused).
    /// With `cluster`, member `i` is the cluster's member `i`: process exits are seen
    /// at once and the death carries the log tail.
    pub fn start(
        config: &ClientConfig,
        cluster: Option<Arc<Cluster>>,
        monitor: MonitorConfig,
    ) -> Result<Monitor, crate::client::ClientError> {
        let mut probe_cfg = config.clone();
        probe_cfg.dial_timeout = monitor.probe_timeout;
        probe_cfg.command_timeout = monitor.probe_timeout;
        let probes = config
            .endpoints
            .iter()
            .map(|ep| {
                let mut c = probe_cfg.clone();
                c.endpoints = vec![ep.clone()];
                Client::connect_lazy(c)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let names = match &cluster {
            Some(c) => c.members().into_iter().map(|m| m.name).collect(),
            None => config.endpoints.clone(),
        };
        let n = probes.len();
        let (declared, _) = tokio::sync::watch::channel(false);
        let inner = Arc::new(Inner {
            probes,
            names,
            endpoints: config.endpoints.clone(),
            cluster,
            config: MonitorConfig {
                misses: monitor.misses.max(1),
                ..monitor
            },
            state: Mutex::new(State {
                misses: vec![0; n],
                first_miss_ns: vec![None; n],
                last_ok_ns: vec![None; n],
                last_error: vec![String::new(); n],
                last_full_round_ns: None,
                death: None,
            }),
            declared,
            round: tokio::sync::Mutex::new(()),
        });
        let bg = inner.clone();
        let task = tokio::spawn(async move {
            loop {
                if bg.round().await.is_some() {
                    return;
                }
                tokio::time::sleep(bg.config.interval).await;
            }
        });
        Ok(Monitor { inner, task })
    }

    /// The death declared so far, if any.
    pub fn death(&self) -> Option<Death> {
        self.inner.lock().death.clone()
    }

    /// Probes every member now (one round, counted like a periodic one); returns the
    /// death declared so far, if any.
    pub async fn probe_now(&self) -> Option<Death> {
        self.inner.round().await
    }

    /// Whether every member answered in a probe round that started at or after `ns`
    /// (on the [`now_ns`] clock), with no death declared.
    pub fn all_answered_since(&self, ns: u64) -> bool {
        let st = self.inner.lock();
        st.death.is_none() && st.last_full_round_ns.is_some_and(|t| t >= ns)
    }

    /// Probes until every member has answered one round that started now (returns
    /// `None`) or a death is declared (returns it); at most
    /// [`MonitorConfig::misses`] + 1 rounds.
    pub async fn settle(&self) -> Option<Death> {
        let since = now_ns();
        for round in 0..=self.inner.config.misses {
            if round > 0 {
                tokio::time::sleep(self.inner.config.interval).await;
            }
            if let Some(d) = self.probe_now().await {
                return Some(d);
            }
            if self.all_answered_since(since) {
                return None;
            }
        }
        self.death()
    }

    /// Resolves when a death is declared (at once if one already was).
    pub async fn dead(&self) -> Death {
        let mut rx = self.inner.declared.subscribe();
        loop {
            if let Some(d) = self.death() {
                return d;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `inner`, which we hold: cannot happen; wait forever.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Whether a failed probe still shows a live server: it answered with a status of
/// its own (auth required, Status unimplemented, ...), not a transport failure, a
/// deadline, or `Unavailable`.
fn answered(e: &crate::client::ClientError) -> bool {
    e.code().is_some_and(crate::record::is_rejection)
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn declare(&self, member: usize, how: String) -> Death {
        let log_tail = self
            .cluster
            .as_ref()
            .and_then(|c| c.log_tail(member, LOG_TAIL_LINES).ok())
            .unwrap_or_default();
        let mut st = self.lock();
        if let Some(d) = &st.death {
            return d.clone();
        }
        let d = Death {
            member,
            name: self.names.get(member).cloned().unwrap_or_default(),
            endpoint: self.endpoints.get(member).cloned().unwrap_or_default(),
            detected_ns: now_ns(),
            last_ok_ns: st.last_ok_ns.get(member).copied().flatten(),
            how,
            log_tail,
        };
        st.death = Some(d.clone());
        drop(st);
        self.declared.send_replace(true);
        d
    }

    /// Declares the first launched member whose process exited on its own, if any.
    fn exited(&self) -> Option<Death> {
        let cluster = self.cluster.as_ref()?;
        let (i, status) = cluster
            .members()
            .into_iter()
            .enumerate()
            .find_map(|(i, m)| m.exited.map(|s| (i, s)))?;
        Some(self.declare(i, format!("process exited on its own: {status}")))
    }

    /// One probe round; returns the death once one is declared.
    async fn round(&self) -> Option<Death> {
        let _one = self.round.lock().await;
        if let Some(d) = self.lock().death.clone() {
            return Some(d);
        }
        if let Some(d) = self.exited() {
            return Some(d);
        }
        let round_ns = now_ns();
        let answers = futures::future::join_all(
            self.probes
                .iter()
                .map(|c| async move { c.status(pb::StatusRequest {}).await }),
        )
        .await;
        let now = now_ns();
        let mut down = None;
        {
            let mut st = self.lock();
            let mut all = true;
            for (i, a) in answers.into_iter().enumerate() {
                match a.map_err(|e| (answered(&e), e)) {
                    Ok(_) | Err((true, _)) => {
                        st.misses[i] = 0;
                        st.first_miss_ns[i] = None;
                        st.last_ok_ns[i] = Some(now);
                    }
                    Err((false, e)) => {
                        all = false;
                        st.misses[i] += 1;
                        let first = *st.first_miss_ns[i].get_or_insert(round_ns);
                        st.last_error[i] = e.to_string();
                        // Misses must also span an interval: a burst of on-demand
                        // rounds alone does not declare a member down.
                        let span = Duration::from_nanos(now.saturating_sub(first));
                        if st.misses[i] >= self.config.misses
                            && span >= self.config.interval
                            && down.is_none()
                        {
                            down = Some((i, st.last_error[i].clone()));
                        }
                    }
                }
            }
            if all {
                st.last_full_round_ns =
                    Some(st.last_full_round_ns.map_or(round_ns, |t| t.max(round_ns)));
            }
        }
        // A process that exited during the round explains the misses better.
        if let Some(d) = self.exited() {
            return Some(d);
        }
        let (i, err) = down?;
        Some(self.declare(
            i,
            format!(
                "{} Status probes in a row unanswered ({} ms deadline each); last: {err}",
                self.config.misses,
                self.config.probe_timeout.as_millis()
            ),
        ))
    }
}
