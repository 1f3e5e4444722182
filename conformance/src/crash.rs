//! A target that dies mid-run: what was in flight, and the finding that names it.
//!
//! Every case runs with its own [`Tracker`], a recorder that remembers the last
//! requests the case sent. When the run's [`gauntlet_harness::liveness::Monitor`]
//! declares a member down, the cases in flight at that moment (and the ones whose
//! failure came while a member was not answering) are the suspects: their recent
//! requests go into the [`Crash`] finding. When the runner launched the target it
//! then restarts the cluster and runs each suspect alone; a suspect that kills the
//! target again is the confirmed trigger.

use std::collections::VecDeque;
use std::sync::Mutex;

use gauntlet_harness::{OpRecord, Recorder, SentRecord};
use serde::Serialize;

/// Requests a [`Tracker`] keeps (the most recent ones).
const TRACKED_REQUESTS: usize = 6;
/// Characters of one described request.
const REQUEST_CHARS: usize = 400;

/// Remembers the last requests one case sent, and which of them got an answer.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    recent: Mutex<VecDeque<(SentRecord, bool)>>,
}

impl Recorder for Tracker {
    fn sent(&self, record: SentRecord) {
        let mut q = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if q.len() == TRACKED_REQUESTS {
            q.pop_front();
        }
        q.push_back((record, false));
    }
    fn operation(&self, record: OpRecord) {
        // A unary call's completion carries the same client and invocation time as
        // its `sent` record.
        let mut q = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = q
            .iter_mut()
            .find(|(s, _)| s.client_id == record.client_id && s.sent_ns == record.invoke_ns)
        {
            e.1 = record.failure.is_none();
        }
    }
}

impl Tracker {
    /// The requests that matter at a crash, oldest first, each as
    /// `endpoint [marks]: Method(...)`: every remembered request that got no
    /// successful answer (or, when all did, the last one). Those sent to
    /// `dead_endpoint` are marked.
    pub(crate) fn requests(&self, dead_endpoint: &str) -> Vec<String> {
        let q = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut pick: Vec<&(SentRecord, bool)> = q.iter().filter(|(_, ok)| !ok).collect();
        if pick.is_empty() {
            pick.extend(q.back());
        }
        pick.into_iter()
            .map(|(r, ok)| {
                let mut marks = Vec::new();
                if !ok {
                    marks.push("no answer");
                }
                if same_endpoint(&r.endpoint, dead_endpoint) {
                    marks.push("to the member that stopped");
                }
                let marks = if marks.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", marks.join(", "))
                };
                format!(
                    "{}{marks}: {}",
                    r.endpoint,
                    r.request.describe(REQUEST_CHARS)
                )
            })
            .collect()
    }
}

/// Whether two endpoints name the same server (`http://` and bare `host:port` alike).
pub(crate) fn same_endpoint(a: &str, b: &str) -> bool {
    let strip = |s: &str| {
        s.trim()
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string()
    };
    strip(a) == strip(b)
}

/// A case that was running when a member stopped answering.
#[derive(Debug, Clone, Serialize)]
pub struct InFlight {
    /// Case id.
    pub id: String,
    /// How long it had been running when the member was declared down.
    pub running_ms: u64,
    /// Its last requests, oldest first (`endpoint: Method(request)`).
    pub requests: Vec<String>,
}

/// What isolating a crash found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Trigger {
    /// Not tried: the runner did not launch the target, so it cannot restart it.
    NotTried,
    /// Each suspect ran alone on a restarted cluster and none killed it again (the
    /// crash needs load, or timing, or an earlier request).
    NotReproduced,
    /// Run alone on a restarted cluster, these cases killed it again.
    Confirmed {
        /// The case ids.
        cases: Vec<String>,
    },
    /// Isolation could not finish (a restart failed, or too many crashes).
    Unfinished {
        /// Why.
        reason: String,
    },
}

/// One member of the target that stopped answering during the run: the finding.
#[derive(Debug, Clone, Serialize)]
pub struct Crash {
    /// The member's name (`m1`), or its endpoint for external targets.
    pub member: String,
    /// Its client endpoint.
    pub endpoint: String,
    /// When it was declared down, ms since the run started.
    pub at_ms: u64,
    /// When it last answered a probe, ms since the run started.
    pub last_answered_ms: Option<u64>,
    /// How it died (process exit status, or unanswered probes).
    pub how: String,
    /// The cases in flight at that moment: the likely trigger, with their requests.
    pub in_flight: Vec<InFlight>,
    /// The tail of the member's log when the runner launched it (the panic message).
    pub log_tail: Vec<String>,
    /// What running the suspects alone found.
    pub trigger: Trigger,
    /// Whether the runner restarted the cluster and went on with the remaining cases.
    pub restarted: bool,
    /// The ledger entry covering the confirmed trigger on this etcd release, if any.
    pub known_issue: Option<crate::ledger::KnownIssue>,
}

impl Crash {
    /// One line: `m1 (http://127.0.0.1:2379) stopped answering at 12.3 s: process exited ...`.
    pub fn headline(&self) -> String {
        format!(
            "{} ({}) stopped answering at {:.1} s into the run: {}",
            self.member,
            self.endpoint,
            self.at_ms as f64 / 1000.0,
            self.how
        )
    }

    /// The case ids suspected of (or confirmed as) killing the member.
    pub fn suspects(&self) -> Vec<&str> {
        match &self.trigger {
            Trigger::Confirmed { cases } => cases.iter().map(String::as_str).collect(),
            _ => self.in_flight.iter().map(|f| f.id.as_str()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gauntlet_api::etcdserverpb as pb;
    use gauntlet_harness::{Call, Request};

    /// The successful completion of client 1's request sent at `invoke_ns`.
    fn answered(invoke_ns: u64) -> OpRecord {
        OpRecord {
            client_id: 1,
            op_id: 0,
            endpoint: String::new(),
            call: Call::Range(pb::RangeRequest::default()),
            ret: None,
            failure: None,
            invoke_ns,
            complete_ns: 0,
            outcome: gauntlet_harness::Outcome::Ok,
        }
    }

    #[test]
    fn tracker_keeps_the_last_requests_and_marks_the_dead_member() {
        let t = Tracker::default();
        for i in 0..10u8 {
            t.sent(SentRecord {
                client_id: 1,
                endpoint: if i % 2 == 0 {
                    "http://127.0.0.1:1".into()
                } else {
                    "http://127.0.0.1:2".into()
                },
                request: Request::Unary(Call::Range(pb::RangeRequest {
                    key: vec![b'a' + i],
                    ..Default::default()
                })),
                sent_ns: u64::from(i),
            });
        }
        // None answered: all six remembered ones are shown.
        let r = t.requests("127.0.0.1:2");
        assert_eq!(r.len(), TRACKED_REQUESTS);
        assert!(r[0].contains("key: b\"e\""), "{r:?}");
        assert!(
            r[1].contains("(no answer, to the member that stopped)"),
            "{r:?}"
        );
        assert!(
            r[0].ends_with("...") || !r[0].contains("to the member"),
            "{r:?}"
        );
        // Answer all but the last: only the last is shown.
        for i in 4..9u8 {
            t.operation(answered(u64::from(i)));
        }
        let r = t.requests("127.0.0.1:2");
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].contains("key: b\"j\"") && r[0].contains("no answer"),
            "{r:?}"
        );
        // All answered: the last one, unmarked.
        t.operation(answered(9));
        let r = t.requests("127.0.0.1:2");
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(!r[0].contains("no answer"), "{r:?}");
    }

    #[test]
    fn endpoints_compare_without_scheme() {
        assert!(same_endpoint("http://127.0.0.1:5/", "127.0.0.1:5"));
        assert!(!same_endpoint("http://127.0.0.1:5", "127.0.0.1:6"));
    }
}
