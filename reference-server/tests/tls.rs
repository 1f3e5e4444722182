//! TLS on the built `gauntlet-server`, client and peer URLs, as etcd's flags set it.
//!
//! Every certificate is made here with rcgen (a CA, another CA nobody trusts, server,
//! peer and client certificates, a CRL): no key is committed. Acceptance is checked
//! two ways: with tonic (gRPC, as etcd clients use it) and with raw rustls
//! handshakes followed by `GET /health` on the same port, so that a test can offer
//! exactly one protocol version or cipher suite and see the server refuse it.
//!
//! The 3-member cluster with client-certificate auth and peer TLS launched through
//! the harness (`ClusterSpec::peer_tls`) is in `harness/tests/tls.rs`; the harness
//! may not be a dependency of this crate.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, spawn, Server, HEALTHY_WITHIN};
use gauntlet_api::etcdserverpb::{kv_client::KvClient, PutRequest, RangeRequest};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa,
    KeyIdMethod, KeyPair, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::CipherSuite;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Deadline of each connection and call a test makes.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Serial of the client certificate the CRL revokes.
const REVOKED_SERIAL: u64 = 666;

/// A PEM certificate and key on disk.
#[derive(Clone)]
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

/// Everything a test needs, written under one directory.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    /// Server and peer certificate: 127.0.0.1, ::1 and localhost, CN "member".
    member: Pair,
    /// CN "alice", signed by the CA.
    client: Pair,
    /// CN "mallory", signed by the CA, revoked by `crl`.
    revoked: Pair,
    /// CN "alice" again, signed by the CA nobody trusts.
    stranger: Pair,
    /// CN "carol", SAN "client.example": for `--client-cert-allowed-hostname`.
    named: Pair,
    crl: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    (p.self_signed(&key).unwrap(), key)
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p
}

fn leaf(
    dir: &Path,
    name: &str,
    issuer: &(rcgen::Certificate, KeyPair),
    cn: &str,
    sans: &[&str],
    serial: Option<u64>,
) -> Pair {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    for s in sans {
        p.subject_alt_names.push(match s.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*s).to_string().try_into().unwrap()),
        });
    }
    p.serial_number = serial.map(SerialNumber::from);
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer.0, &issuer.1).unwrap();
    Pair {
        cert: write(dir, &format!("{name}.pem"), &cert.pem()),
        key: write(dir, &format!("{name}-key.pem"), &key.serialize_pem()),
    }
}

fn pki(dir: &Path) -> Pki {
    let authority = ca("gauntlet test CA");
    let other = ca("some other CA");
    let now = time::OffsetDateTime::now_utc();
    let crl = CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(REVOKED_SERIAL),
            revocation_time: now - time::Duration::minutes(5),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&authority.0, &authority.1)
    .unwrap();
    let member_sans = ["127.0.0.1", "::1", "localhost"];
    Pki {
        ca: write(dir, "ca.pem", &authority.0.pem()),
        other_ca: write(dir, "other-ca.pem", &other.0.pem()),
        member: leaf(dir, "member", &authority, "member", &member_sans, Some(1)),
        client: leaf(dir, "alice", &authority, "alice", &[], Some(2)),
        revoked: leaf(
            dir,
            "mallory",
            &authority,
            "mallory",
            &[],
            Some(REVOKED_SERIAL),
        ),
        stranger: leaf(dir, "stranger", &other, "alice", &[], Some(3)),
        named: leaf(
            dir,
            "carol",
            &authority,
            "carol",
            &["client.example"],
            Some(4),
        ),
        crl: write(dir, "crl.pem", &crl.pem().unwrap()),
    }
}

/// What a raw rustls client offers.
struct Offer<'a> {
    /// Trusted server CA.
    ca: &'a Path,
    /// The client certificate, if any.
    identity: Option<&'a Pair>,
    /// Protocol versions.
    versions: &'a [&'static rustls::SupportedProtocolVersion],
    /// Only these suites (with the TLS 1.3 ones); `None`: all of ring's.
    suites: Option<&'a [CipherSuite]>,
}

impl<'a> Offer<'a> {
    fn new(ca: &'a Path, identity: Option<&'a Pair>) -> Offer<'a> {
        Offer {
            ca,
            identity,
            versions: rustls::ALL_VERSIONS,
            suites: None,
        }
    }

    fn config(&self) -> Arc<rustls::ClientConfig> {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(only) = self.suites {
            provider
                .cipher_suites
                .retain(|s| s.tls13().is_some() || only.contains(&s.suite()));
        }
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(self.ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(self.versions)
            .unwrap()
            .with_root_certificates(roots);
        let cfg = match self.identity {
            Some(p) => b
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(&p.cert)
                        .unwrap()
                        .map(Result::unwrap)
                        .collect(),
                    PrivateKeyDer::from_pem_file(&p.key).unwrap(),
                )
                .unwrap(),
            None => b.with_no_client_auth(),
        };
        Arc::new(cfg)
    }
}

/// A TLS handshake with `offer`, then `GET /health` over HTTP/1.1: the status line,
/// or why the connection failed. The whole exchange has [`CALL_TIMEOUT`].
async fn https_health(port: u16, offer: &Offer<'_>) -> Result<String, String> {
    let connector = tokio_rustls::TlsConnector::from(offer.config());
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tls.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut out = Vec::new();
        tls.read_to_end(&mut out)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&out).to_string();
        text.lines()
            .next()
            .filter(|l| l.starts_with("HTTP/1.1"))
            .map(str::to_string)
            .ok_or_else(|| format!("no HTTP answer: {text:?}"))
    };
    tokio::time::timeout(CALL_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err("no answer in time".into()))
}

/// Waits until `/health` answers 200 over TLS; panics with the server's stderr if it
/// exits or takes longer than [`HEALTHY_WITHIN`].
async fn wait_healthy(server: &mut Server, offer: &Offer<'_>) {
    let deadline = Instant::now() + HEALTHY_WITHIN;
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!(
                "gauntlet-server exited with {status}; stderr:\n{}",
                server.stderr()
            );
        }
        match https_health(server.client_port, offer).await {
            Ok(line) if line.contains(" 200 ") => return,
            last => assert!(
                Instant::now() < deadline,
                "not healthy over TLS within {HEALTHY_WITHIN:?} (last: {last:?}); stderr:\n{}",
                server.stderr()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A gRPC KV client over TLS (tonic's rustls), trusting `ca`, presenting `identity`.
async fn kv(
    port: u16,
    ca: &Path,
    identity: Option<&Pair>,
) -> Result<KvClient<tonic::transport::Channel>, String> {
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()));
    if let Some(p) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(&p.cert).unwrap(),
            std::fs::read(&p.key).unwrap(),
        ));
    }
    let channel = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(CALL_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(KvClient::new(channel))
}

async fn put(c: &mut KvClient<tonic::transport::Channel>, key: &str, value: &str) {
    c.put(PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn get(c: &mut KvClient<tonic::transport::Channel>, key: &str) -> Vec<u8> {
    let r = c
        .range(RangeRequest {
            key: key.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    r.kvs.first().map(|kv| kv.value.clone()).unwrap_or_default()
}

/// Starts an `n`-member cluster on loopback with `https://` client and peer URLs;
/// `extra` goes to every member. Each member with its peer port.
fn https_cluster(dir: &Path, n: usize, extra: &[String]) -> Vec<(Server, u16)> {
    let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("m{i}=https://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    ports
        .iter()
        .enumerate()
        .map(|(i, (c, p))| {
            let mut args = vec![
                format!("--name=m{i}"),
                format!("--data-dir={}", dir.join(format!("m{i}.data")).display()),
                format!("--listen-client-urls=https://127.0.0.1:{c}"),
                format!("--advertise-client-urls=https://127.0.0.1:{c}"),
                format!("--listen-peer-urls=https://127.0.0.1:{p}"),
                format!("--initial-advertise-peer-urls=https://127.0.0.1:{p}"),
                format!("--initial-cluster={initial}"),
                "--initial-cluster-token=tls-test".into(),
                "--heartbeat-interval=50".into(),
                "--election-timeout=500".into(),
            ];
            args.extend(extra.iter().cloned());
            (spawn(dir, &args, &[], *c), *p)
        })
        .collect()
}

/// The client flags of [`Pki`] with client-certificate auth and the CRL, and the peer
/// flags with peer-certificate auth.
fn secured(pki: &Pki) -> Vec<String> {
    vec![
        format!("--cert-file={}", pki.member.cert.display()),
        format!("--key-file={}", pki.member.key.display()),
        format!("--trusted-ca-file={}", pki.ca.display()),
        "--client-cert-auth".into(),
        format!("--client-crl-file={}", pki.crl.display()),
        format!("--peer-cert-file={}", pki.member.cert.display()),
        format!("--peer-key-file={}", pki.member.key.display()),
        format!("--peer-trusted-ca-file={}", pki.ca.display()),
        "--peer-client-cert-auth".into(),
        format!("--peer-crl-file={}", pki.crl.display()),
    ]
}

/// Three members, TLS both ways: a client with a certificate reads its write on
/// every member (which crosses the peer links), over gRPC and `/health` alike; no
/// certificate, a certificate from an untrusted CA, a revoked certificate, and a
/// client that does not trust the server's CA are each refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_with_client_certificate_auth_crl_and_peer_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (mut members, peer_ports): (Vec<Server>, Vec<u16>) =
        https_cluster(dir.path(), 3, &secured(&pki))
            .into_iter()
            .unzip();
    let good = Offer::new(&pki.ca, Some(&pki.client));
    for m in &mut members {
        wait_healthy(m, &good).await;
    }
    let mut first = kv(members[0].client_port, &pki.ca, Some(&pki.client))
        .await
        .unwrap();
    put(&mut first, "/tls/k", "v").await;
    for m in &members {
        let mut c = kv(m.client_port, &pki.ca, Some(&pki.client)).await.unwrap();
        assert_eq!(get(&mut c, "/tls/k").await, b"v");
    }

    let port = members[1].client_port;
    for (what, offer, expected) in [
        (
            "no client certificate",
            Offer::new(&pki.ca, None),
            "CertificateRequired",
        ),
        (
            "a client certificate from an untrusted CA",
            Offer::new(&pki.ca, Some(&pki.stranger)),
            "UnknownCA",
        ),
        (
            "a revoked client certificate",
            Offer::new(&pki.ca, Some(&pki.revoked)),
            "CertificateRevoked",
        ),
        (
            "a client that does not trust the server's CA",
            Offer::new(&pki.other_ca, Some(&pki.client)),
            "UnknownIssuer",
        ),
    ] {
        let refused = https_health(port, &offer).await.expect_err(what);
        assert!(refused.contains(expected), "{what}: {refused}");
        // gRPC is refused too, for the same reason.
        let grpc = match kv(port, offer.ca, offer.identity).await {
            Err(e) => e,
            Ok(mut c) => match c.range(RangeRequest::default()).await {
                Err(s) => format!("{s:?}"),
                Ok(_) => panic!("{what}: the gRPC call was answered"),
            },
        };
        assert!(grpc.contains(expected), "{what}: {grpc}");
    }
    // A peer port refuses what a client port refuses: the revoked certificate.
    let refused = https_health(peer_ports[1], &Offer::new(&pki.ca, Some(&pki.revoked)))
        .await
        .unwrap_err();
    assert!(refused.contains("CertificateRevoked"), "{refused}");
}

/// `--cipher-suites` restricts TLS 1.2 to the named suite, and the default protocol
/// range is etcd 3.5's (TLS 1.2 only); `--tls-min-version=TLS1.3` refuses TLS 1.2, on
/// the client URLs and on an `https://` metrics URL alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cipher_suites_and_tls_versions_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let one_member = |extra: &[&str]| {
        let mut args = vec![
            format!("--cert-file={}", pki.member.cert.display()),
            format!("--key-file={}", pki.member.key.display()),
            "--peer-auto-tls".to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let own = tempfile::tempdir_in(dir.path()).unwrap().keep();
        https_cluster(&own, 1, &args).remove(0).0
    };
    let tls12: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let named: &[CipherSuite] = &[CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256];
    let other: &[CipherSuite] = &[CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384];
    let offer = |versions, suites| Offer {
        ca: &pki.ca,
        identity: None,
        versions,
        suites,
    };

    let mut suites = one_member(&["--cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]);
    wait_healthy(&mut suites, &offer(tls12, Some(named))).await;
    let refused = https_health(suites.client_port, &offer(tls12, Some(other)))
        .await
        .unwrap_err();
    assert!(refused.contains("HandshakeFailure"), "{refused}");
    let refused = https_health(suites.client_port, &offer(tls13, None))
        .await
        .unwrap_err();
    assert!(
        refused.contains("ProtocolVersion"),
        "TLS 1.3 by default: {refused}"
    );

    let metrics = free_port();
    let metrics_url = format!("--listen-metrics-urls=https://127.0.0.1:{metrics}");
    let mut modern = one_member(&["--tls-min-version=TLS1.3", &metrics_url]);
    wait_healthy(&mut modern, &offer(tls13, None)).await;
    // An https:// metrics URL is served with the client TLS, versions included.
    let line = https_health(metrics, &offer(tls13, None)).await.unwrap();
    assert!(line.contains(" 200 "), "{line}");
    let refused = https_health(metrics, &offer(tls12, None))
        .await
        .unwrap_err();
    assert!(refused.contains("ProtocolVersion"), "{refused}");
    let refused = https_health(modern.client_port, &offer(tls12, None))
        .await
        .unwrap_err();
    assert!(refused.contains("ProtocolVersion"), "{refused}");
    // TLS 1.3 works for gRPC too.
    let mut c = kv(modern.client_port, &pki.ca, None).await.unwrap();
    put(&mut c, "/tls/v13", "yes").await;
    assert_eq!(get(&mut c, "/tls/v13").await, b"yes");
}

/// `--client-cert-allowed-hostname` admits only a client certificate valid for that
/// host, and `--peer-cert-allowed-cn` only a peer certificate with that CN (the
/// cluster forms when every member's certificate has it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_hostname_and_cn_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let mut args = secured(&pki);
    args.push("--client-cert-allowed-hostname=client.example".into());
    args.push("--peer-cert-allowed-cn=member".into());
    let mut members: Vec<Server> = https_cluster(dir.path(), 3, &args)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let carol = Offer::new(&pki.ca, Some(&pki.named));
    for m in &mut members {
        wait_healthy(m, &carol).await;
    }
    let mut c = kv(members[2].client_port, &pki.ca, Some(&pki.named))
        .await
        .unwrap();
    put(&mut c, "/tls/allowed", "carol").await;
    let refused = https_health(
        members[0].client_port,
        &Offer::new(&pki.ca, Some(&pki.client)),
    )
    .await
    .unwrap_err();
    assert!(refused.contains("HandshakeFailure"), "{refused}");

    // A member whose peer CN is not allowed is refused by the others: with
    // --peer-cert-allowed-cn=someone-else a cluster never gets a leader.
    let dir2 = tempfile::tempdir().unwrap();
    let mut args = secured(&pki);
    args.push("--peer-cert-allowed-cn=someone-else".into());
    let mut lonely: Vec<Server> = https_cluster(dir2.path(), 3, &args)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let alice = Offer::new(&pki.ca, Some(&pki.client));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let health =
        futures::future::join_all(lonely.iter().map(|m| https_health(m.client_port, &alice))).await;
    for (m, health) in lonely.iter_mut().zip(health) {
        assert!(m.child.try_wait().unwrap().is_none(), "{}", m.stderr());
        // Not serving clients (no leader to publish through) or unhealthy.
        assert!(
            health.as_deref().is_ok_and(|l| l.contains(" 503 ")) || health.is_err(),
            "a member answered healthy without peers: {health:?}"
        );
    }
}

/// `--auto-tls` and `--peer-auto-tls`: each member makes its own certificates under
/// `<data-dir>/fixtures/{client,peer}` (valid for the listen URLs' hosts), the members
/// reach each other over TLS without verifying them (as etcd's peers do), and a
/// client trusting a member's generated certificate is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_tls_cluster_serves_with_generated_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--auto-tls".to_string(),
        "--peer-auto-tls".to_string(),
        "--self-signed-cert-validity=2".to_string(),
    ];
    let mut members: Vec<Server> = https_cluster(dir.path(), 3, &args)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let fixtures = |i: usize, side: &str| {
        dir.path()
            .join(format!("m{i}.data/fixtures/{side}/cert.pem"))
    };
    let deadline = Instant::now() + HEALTHY_WITHIN;
    for (i, m) in members.iter_mut().enumerate() {
        while !(fixtures(i, "client").is_file() && fixtures(i, "peer").is_file()) {
            assert!(Instant::now() < deadline, "{}", m.stderr());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let own = fixtures(i, "client");
        wait_healthy(m, &Offer::new(&own, None)).await;
    }
    let mut c0 = kv(members[0].client_port, &fixtures(0, "client"), None)
        .await
        .unwrap();
    put(&mut c0, "/tls/auto", "generated").await;
    let mut c2 = kv(members[2].client_port, &fixtures(2, "client"), None)
        .await
        .unwrap();
    assert_eq!(get(&mut c2, "/tls/auto").await, b"generated");
    // A member's certificate is not another's: trusting member 0's, member 2 is refused.
    assert!(https_health(
        members[2].client_port,
        &Offer::new(&fixtures(0, "client"), None)
    )
    .await
    .is_err());
}

/// TLS settings that cannot work are refused at start: exit 2, one line naming the
/// flag (etcd's wording where it has one).
#[test]
fn tls_misconfigurations_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--listen-client-urls=https://127.0.0.1:{c}", "--advertise-client-urls=https://127.0.0.1:{c}"],
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:",
        ),
        (&["--cert-file=/c.pem"], "--cert-file and --key-file go together"),
        (&["--peer-key-file=/k.pem"], "--peer-cert-file and --peer-key-file go together"),
        (&["--cipher-suites=TLS_NOT_A_SUITE"], "--cipher-suites: unexpected TLS cipher suite \"TLS_NOT_A_SUITE\""),
        (&["--cipher-suites=TLS_RSA_WITH_AES_128_CBC_SHA"], "--cipher-suites: TLS_RSA_WITH_AES_128_CBC_SHA is not offered"),
        (&["--tls-min-version=TLS1.3", "--tls-max-version=TLS1.2"], "--tls-min-version=TLS1.3 is greater than --tls-max-version=TLS1.2"),
        (&["--tls-max-version=TLS1.1"], "--tls-max-version=TLS1.1: gauntlet-server offers TLS1.2 and TLS1.3 only"),
        (&["--peer-cert-allowed-cn=a", "--peer-cert-allowed-hostname=b"], "--peer-cert-allowed-cn and --peer-cert-allowed-hostname are mutually exclusive"),
    ];
    for (flags, expected) in cases {
        let (mut args, client) = common::member_args(dir.path());
        for f in *flags {
            let f = f.replace("{c}", &client.to_string());
            if let Some((name, _)) = f.split_once('=') {
                args.retain(|a| !a.starts_with(&format!("{name}=")));
            }
            args.push(f);
        }
        let mut server = spawn(dir.path(), &args, &[], client);
        let (code, stderr) = server.wait_exit();
        assert_eq!(code, Some(2), "{flags:?}: exit code; stderr:\n{stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{flags:?}: want one line, got:\n{stderr}");
        assert!(
            lines[0].starts_with(&format!("gauntlet-server: {expected}")),
            "{flags:?}: got `{}`",
            lines[0]
        );
    }
}
