//! What a case is: a stable id, the guarantee it checks with its documentation
//! reference, where it applies, what it needs, and its check.

use std::fmt::{self, Debug};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use gauntlet_api::rpctypes::EtcdError;
use gauntlet_harness::{Client, ClientConfig, ClientError, Cluster, Credentials};
use serde::Serialize;

/// The etcd v3 service a case belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// `etcdserverpb.KV`.
    Kv,
    /// `etcdserverpb.Watch`.
    Watch,
    /// `etcdserverpb.Lease`.
    Lease,
    /// `etcdserverpb.Cluster`.
    Cluster,
    /// `etcdserverpb.Maintenance`.
    Maintenance,
    /// `etcdserverpb.Auth`.
    Auth,
    /// `v3lockpb.Lock`.
    Lock,
    /// `v3electionpb.Election`.
    Election,
    /// The JSON gateway (`/v3/...` over HTTP) in front of the other services.
    Gateway,
    /// TLS with client certificates, and the certificate's common name as the user.
    Tls,
}

impl Service {
    /// Every service, in report order.
    pub const ALL: [Service; 10] = [
        Service::Kv,
        Service::Watch,
        Service::Lease,
        Service::Cluster,
        Service::Maintenance,
        Service::Auth,
        Service::Lock,
        Service::Election,
        Service::Gateway,
        Service::Tls,
    ];

    /// The lower-case name, which is also the first part of case ids.
    pub fn name(self) -> &'static str {
        match self {
            Service::Kv => "kv",
            Service::Watch => "watch",
            Service::Lease => "lease",
            Service::Cluster => "cluster",
            Service::Maintenance => "maintenance",
            Service::Auth => "auth",
            Service::Lock => "lock",
            Service::Election => "election",
            Service::Gateway => "gateway",
            Service::Tls => "tls",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A server version `major.minor.patch` (the harness's, so every suite parses
/// versions the same way).
pub use gauntlet_harness::profile::SemVer as Version;

/// The server versions a case applies to: `from` (inclusive) up to `until` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// Oldest version the guarantee holds for.
    pub from: Version,
    /// First version it no longer holds for, if any.
    pub until: Option<Version>,
}

impl Versions {
    /// Every version Gauntlet targets (3.4 and later).
    pub const ALL: Versions = Versions {
        from: Version(3, 4, 0),
        until: None,
    };
    /// etcd 3.5 and later (features and fields added in 3.5).
    pub const SINCE_3_5: Versions = Versions {
        from: Version(3, 5, 0),
        until: None,
    };

    /// Whether `v` is in the range.
    pub fn contains(&self, v: Version) -> bool {
        v >= self.from && self.until.is_none_or(|u| v < u)
    }
}

impl fmt::Display for Versions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.until {
            None => write!(f, ">= {}", self.from),
            Some(u) => write!(f, ">= {}, < {u}", self.from),
        }
    }
}

/// What a case needs from the cluster it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Any cluster, shared with other cases; the case touches only its own key prefix.
    Shared,
    /// At least this many members; shared when the target has them, else a fresh
    /// cluster of this size when the runner launches the target.
    Members(usize),
    /// A cluster of its own with this many members (auth, membership, compaction,
    /// alarms: state that would leak into other cases). Only possible when the runner
    /// launches the target.
    Fresh(usize),
}

/// A case's verdict when it does not hold: the exact request, what etcd's
/// documented behaviour says, and what the server did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The request (or sequence of requests) that showed the difference.
    pub request: String,
    /// The documented behaviour.
    pub expected: String,
    /// What the server answered.
    pub actual: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request: {}\n  expected: {}\n  actual: {}",
            self.request, self.expected, self.actual
        )
    }
}

impl std::error::Error for Failure {}

/// What a check returns.
pub type CheckResult = Result<(), Failure>;
/// A boxed check future.
pub type CheckFuture = Pin<Box<dyn Future<Output = CheckResult> + Send>>;
/// A check: runs against the context it is given.
pub type CheckFn = Arc<dyn Fn(Ctx) -> CheckFuture + Send + Sync>;

/// One conformance case. Cases are plain data: the catalogue builds them once and the
/// runner runs them against any target.
#[derive(Clone)]
pub struct Case {
    /// Stable id, `service.rpc.behaviour`, e.g. `kv.range.prefix_limit_more`.
    pub id: String,
    /// The service whose guarantee it checks.
    pub service: Service,
    /// One sentence: the guaranteed behaviour.
    pub guarantee: String,
    /// Where etcd documents it.
    pub doc: &'static str,
    /// Server versions it applies to.
    pub versions: Versions,
    /// What cluster it needs.
    pub needs: Needs,
    /// Part of the `kubernetes` profile (what the Kubernetes API server relies on).
    pub kubernetes: bool,
    /// Extra server flags for the fresh cluster of a `Needs::Fresh` case (etcd's names).
    pub server_flags: Vec<String>,
    /// The check.
    pub check: CheckFn,
}

impl Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field("id", &self.id)
            .field("service", &self.service)
            .field("versions", &self.versions)
            .field("needs", &self.needs)
            .finish()
    }
}

/// Builds a case; the builder keeps the catalogue files short.
pub fn case<F, Fut>(
    id: impl Into<String>,
    guarantee: impl Into<String>,
    doc: &'static str,
    check: F,
) -> Case
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CheckResult> + Send + 'static,
{
    let id = id.into();
    let service = Service::ALL
        .into_iter()
        .find(|s| id.split('.').next() == Some(s.name()))
        .unwrap_or_else(|| panic!("case id `{id}` must start with a service name"));
    Case {
        id,
        service,
        guarantee: guarantee.into(),
        doc,
        versions: Versions::ALL,
        needs: Needs::Shared,
        kubernetes: false,
        server_flags: Vec::new(),
        check: Arc::new(move |ctx| Box::pin(check(ctx))),
    }
}

impl Case {
    /// Restricts the versions the case applies to.
    pub fn versions(mut self, v: Versions) -> Case {
        self.versions = v;
        self
    }
    /// Declares what cluster it needs.
    pub fn needs(mut self, n: Needs) -> Case {
        self.needs = n;
        self
    }
    /// Starts its fresh cluster with these extra server flags (implies `Needs::Fresh(1)`
    /// unless a fresh size was declared).
    pub fn server_flags(mut self, flags: &[&str]) -> Case {
        self.server_flags = flags.iter().map(|f| f.to_string()).collect();
        if !matches!(self.needs, Needs::Fresh(_)) {
            self.needs = Needs::Fresh(1);
        }
        self
    }
    /// Marks it part of the `kubernetes` profile.
    pub fn kubernetes(mut self) -> Case {
        self.kubernetes = true;
        self
    }
}

/// What a check runs against.
#[derive(Clone)]
pub struct Ctx {
    /// A client over every member.
    pub client: Client,
    /// One client per member, in member order.
    pub members: Vec<Client>,
    /// This case's own key prefix; every key it writes starts with it.
    pub prefix: String,
    /// The server version (from Status).
    pub version: Version,
    /// The cluster, when the runner launched it for this case (fresh clusters).
    pub cluster: Option<Arc<Cluster>>,
    /// The client configuration (endpoints, TLS), for clients with other credentials.
    pub config: ClientConfig,
}

impl Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("prefix", &self.prefix)
            .field("version", &self.version)
            .finish()
    }
}

/// How long a check waits for an event that must come (a watch event, an expiry).
pub const EVENT_WAIT: Duration = Duration::from_secs(5);
/// How long a check waits to be sure something does NOT come.
pub const QUIET_WAIT: Duration = Duration::from_millis(300);

impl Ctx {
    /// `prefix + suffix` as bytes.
    pub fn key(&self, suffix: &str) -> Vec<u8> {
        format!("{}{suffix}", self.prefix).into_bytes()
    }

    /// The range end covering this case's whole prefix.
    pub fn prefix_end(&self) -> Vec<u8> {
        gauntlet_api::prefix_range_end(self.prefix.as_bytes())
    }

    /// A new client authenticated as `user` (the password must be right).
    pub async fn login(&self, user: &str, password: &str) -> Result<Client, Failure> {
        let mut cfg = self.config.clone();
        cfg.credentials = Some(Credentials {
            user: user.into(),
            password: password.into(),
        });
        Client::connect(cfg).await.map_err(|e| Failure {
            request: format!("Authenticate(name={user:?})"),
            expected: "a token".into(),
            actual: e.to_string(),
        })
    }

    /// A new client without credentials (its own connections).
    pub async fn anonymous(&self) -> Result<Client, Failure> {
        let mut cfg = self.config.clone();
        cfg.credentials = None;
        Client::connect(cfg).await.map_err(|e| Failure {
            request: "connect".into(),
            expected: "a connection".into(),
            actual: e.to_string(),
        })
    }

    /// The launched cluster, or a failure saying the case needs one.
    pub fn cluster(&self) -> Result<&Arc<Cluster>, Failure> {
        self.cluster.as_ref().ok_or_else(|| Failure {
            request: "(setup)".into(),
            expected: "a cluster launched by the runner".into(),
            actual: "external endpoints".into(),
        })
    }
}

/// Renders a request for a failure report: prost's `Debug` with byte lists that are
/// printable ASCII turned back into strings (`[97, 98]` becomes `"ab"`).
pub fn show(value: &impl Debug) -> String {
    let raw = format!("{value:?}");
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw.as_str();
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close) => {
                let inner = &after[..close];
                let bytes: Option<Vec<u8>> = inner
                    .split(", ")
                    .map(|n| n.parse::<u8>().ok().filter(|b| (0x20..0x7f).contains(b)))
                    .collect();
                match bytes {
                    Some(b) if !inner.is_empty() => {
                        out.push_str(&format!("{:?}", String::from_utf8_lossy(&b)));
                    }
                    _ => {
                        out.push('[');
                        out.push_str(inner);
                        out.push(']');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A failure with the request rendered by [`show`].
pub fn failure(
    request: &impl Debug,
    expected: impl Into<String>,
    actual: impl Into<String>,
) -> Failure {
    Failure {
        request: show(request),
        expected: expected.into(),
        actual: actual.into(),
    }
}

/// Unwraps a call that must succeed; an error becomes a failure naming the request.
pub fn ok<T>(request: &impl Debug, r: Result<T, ClientError>) -> Result<T, Failure> {
    r.map_err(|e| failure(request, "success", e.to_string()))
}

/// Checks that a call failed with exactly `expected` (gRPC code and message).
pub fn err_is<T: Debug>(
    request: &impl Debug,
    r: Result<T, ClientError>,
    expected: EtcdError,
) -> CheckResult {
    let want = format!("{:?}: {:?}", expected.code, expected.message);
    match r {
        Ok(resp) => Err(failure(request, want, format!("success: {}", show(&resp)))),
        Err(e) if e.is(expected) => Ok(()),
        Err(e) => Err(failure(
            request,
            want,
            match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c:?}: {m:?}"),
                _ => e.to_string(),
            },
        )),
    }
}

/// Checks `actual == expected`, describing the value as `what`.
pub fn eq<T: PartialEq + Debug>(
    request: &impl Debug,
    what: &str,
    expected: T,
    actual: T,
) -> CheckResult {
    if expected == actual {
        Ok(())
    } else {
        Err(failure(
            request,
            format!("{what} = {}", show(&expected)),
            format!("{what} = {}", show(&actual)),
        ))
    }
}

/// Checks a condition, with the expectation and the actual value described.
pub fn ensure(
    request: &impl Debug,
    cond: bool,
    expected: impl Into<String>,
    actual: impl Debug,
) -> CheckResult {
    if cond {
        Ok(())
    } else {
        Err(failure(request, expected, show(&actual)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!(Version::parse("3.5.1"), Some(Version(3, 5, 1)));
        assert_eq!(Version::parse("v3.4.23"), Some(Version(3, 4, 23)));
        assert_eq!(Version::parse("3.6.0-alpha.0"), Some(Version(3, 6, 0)));
        assert_eq!(Version::parse("3.5"), Some(Version(3, 5, 0)));
        assert_eq!(Version::parse("x"), None);
        assert!(Versions::SINCE_3_5.contains(Version(3, 5, 1)));
        assert!(!Versions::SINCE_3_5.contains(Version(3, 4, 23)));
        let old = Versions {
            from: Version(3, 4, 0),
            until: Some(Version(3, 5, 0)),
        };
        assert!(old.contains(Version(3, 4, 23)) && !old.contains(Version(3, 5, 0)));
    }

    #[test]
    fn show_turns_printable_bytes_into_strings() {
        let req = gauntlet_api::etcdserverpb::RangeRequest {
            key: b"/a".to_vec(),
            range_end: vec![0],
            ..Default::default()
        };
        let s = show(&req);
        assert!(s.contains("key: \"/a\""), "{s}");
        assert!(s.contains("range_end: [0]"), "{s}");
    }
}
