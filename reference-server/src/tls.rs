//! TLS on the client and peer URLs, with rustls (the ring provider, as tonic uses).
//!
//! etcd describes each side's TLS with one `TLSInfo` (certificate, key, trusted CA,
//! client-certificate auth, CRL, allowed CN or hostname), built from `--cert-file`,
//! `--key-file`, ... for the client URLs and from `--peer-*` for the peer URLs. This
//! module has the same shape: a [`TlsInfo`] per side, plus one [`Policy`] (protocol
//! versions and cipher suites, `--tls-min-version`, `--tls-max-version`,
//! `--cipher-suites`) shared by both sides, as in etcd.
//!
//! # How a member uses it
//!
//! 1. [`TlsInfo::resolve`] at start: with `--auto-tls` (or `--peer-auto-tls`) and no
//!    certificate given, a self-signed certificate is made (or reused) under
//!    `<data-dir>/fixtures/client` (or `.../peer`), exactly where etcd keeps its own.
//! 2. [`Resolved::acceptor`] (the server side, [`Resolved::server_config`]) for the
//!    `https://` listeners, and for the peer side also [`Resolved::client_config`]
//!    for every connection this member dials.
//! 3. [`incoming`] turns a TCP listener into a stream of connections for tonic's
//!    `serve_with_incoming`: each accepted socket gets `TCP_NODELAY` and, on an
//!    `https://` listener, a TLS handshake with a deadline of [`HANDSHAKE_TIMEOUT`] in
//!    its own task. A failed handshake is logged at debug and dropped; the listener
//!    never stops for it.
//! 4. Each connection carries a [`ConnInfo`] (tonic's connect info), and the client
//!    router's [`client_cert_extension`] layer copies it into every request: tonic's
//!    [`TcpConnectInfo`] (so `Request::remote_addr` works) and, when the client
//!    presented a verified certificate, a [`ClientCert`] with its common name, which
//!    etcd's auth takes as the user name.
//!
//! Peer clients dial through [`PeerConnector`]: TCP, then TLS, within one deadline.
//!
//! # Where this server follows etcd, and where it cannot
//!
//! - A trusted CA file alone already requires client certificates (etcd's
//!   `ServerConfig`: `TrustedCAFile != "" || ClientCertAuth` means
//!   `RequireAndVerifyClientCert`).
//! - `--cipher-suites` takes Go's names. As in Go, they restrict TLS 1.2 only: TLS 1.3
//!   suites are not configurable and are always offered (their names are accepted).
//!   Go knows suites rustls does not implement (CBC, RSA key exchange, RC4, 3DES);
//!   naming one is an error rather than silently serving a different set.
//! - Versions: TLS 1.2 and 1.3, chosen with etcd 3.6's `--tls-min-version` and
//!   `--tls-max-version` (an extension here: etcd 3.4 and 3.5 lack them). Their
//!   defaults keep etcd 3.5's behaviour, whose servers never go above TLS 1.2: the
//!   maximum is TLS 1.2 unless the minimum or the maximum asks for TLS 1.3.
//! - A CRL (`--client-crl-file`, `--peer-crl-file`) refuses any certificate of the
//!   presented chain whose serial it lists, as etcd's `checkCRL`; a CRL that does
//!   not cover a certificate does not make it fail (Go's check is the same).
//! - `--peer-cert-allowed-cn` / `-hostname` and `--client-cert-allowed-hostname` check
//!   the verified certificate (Go's `VerifyHostname`: IP and DNS SANs, with
//!   wildcards, never the CN) on both ends of a connection, as etcd's
//!   `VerifyPeerCertificate` does.
//! - On peer listeners, a client certificate's SANs must match the dialing address
//!   (etcd's `checkSAN`) unless `--experimental-peer-skip-client-san-verification`.
//! - Generated certificates use ECDSA P-256 (etcd uses P-521, which ring cannot sign
//!   with); validity, subject (`O=etcd`), SANs (the listen URLs' hosts) and key usages
//!   are etcd's. A peer dialing a member with a generated certificate does not verify
//!   it (etcd's `InsecureSkipVerify` for self-signed certificates).
//! - As etcd, the certificate and key are read again for a handshake after either
//!   file changed (etcd reads them at every handshake), so a rotated certificate is
//!   served and presented without a restart. A pair that no longer loads is logged,
//!   and the last good one stays in use (etcd would fail the handshake).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Deadline of one TLS handshake, on listeners and when dialing a peer (the TCP
/// connect included).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Accepted connections (handshaken or plain) waiting for the HTTP server.
const ACCEPT_QUEUE: usize = 128;
/// How long a connection whose handshake failed is kept half-open, its input
/// drained, so that the client reads the alert saying why (a TLS 1.3 client has
/// already sent its request when the server rejects its certificate; closing at once
/// would reset the connection and lose the alert).
const LINGER: Duration = Duration::from_secs(1);
/// Most bytes drained while lingering.
const LINGER_BYTES: usize = 1 << 20;
/// Pause after a failed `accept` (out of file descriptors, say), so the loop does
/// not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The identity a client proved with its certificate, in every request's extensions
/// on a connection where the client presented a certificate the server verified.
///
/// Contract: present only when the handshake verified the client's certificate
/// chain against the trusted CA (and the CRL and allowed-hostname checks passed);
/// absent on plaintext connections and on TLS connections without a client
/// certificate. `common_name` is the subject CN of the leaf certificate, empty when
/// it has none.
///
/// Whether the CN authenticates anyone is auth's decision: etcd takes it as the user
/// name only with `--client-cert-auth` (its `ClientCertAuthEnabled`), when the
/// request carries no token; a trusted CA alone requires a certificate but makes no
/// user of it.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// The leaf certificate's subject common name.
    pub common_name: String,
}

/// Why TLS could not be set up at start. Each message names the flag.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("{flag} {path}: {reason}")]
    File {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the combination (no cipher suite for a version, a key that
    /// does not match the certificate, ...).
    #[error("{what}: {source}")]
    Rustls {
        /// What was being built.
        what: &'static str,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The client verifier could not be built (a bad CRL, an empty CA file).
    #[error("{what}: {reason}")]
    Verifier {
        /// What was being built.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// `--auto-tls`/`--peer-auto-tls` could not make or store a certificate.
    #[error("generating a self-signed certificate in {dir}: {reason}")]
    SelfCert {
        /// `<data-dir>/fixtures/{client,peer}`.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Which URLs a [`TlsInfo`] is for; it names the flags in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `--cert-file`, `--key-file`, ... on the client URLs.
    Client,
    /// `--peer-cert-file`, ... on the peer URLs.
    Peer,
}

impl Side {
    fn flag(self, name: &'static str) -> &'static str {
        match (self, name) {
            (Side::Client, "cert") => "--cert-file",
            (Side::Client, "key") => "--key-file",
            (Side::Client, "ca") => "--trusted-ca-file",
            (Side::Client, "crl") => "--client-crl-file",
            (Side::Peer, "cert") => "--peer-cert-file",
            (Side::Peer, "key") => "--peer-key-file",
            (Side::Peer, "ca") => "--peer-trusted-ca-file",
            (Side::Peer, "crl") => "--peer-crl-file",
            _ => "TLS",
        }
    }

    /// etcd's directory for generated certificates under the data dir.
    fn fixtures(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Peer => "peer",
        }
    }
}

/// What a certificate presented by the other end must name, beyond a valid chain
/// (etcd's `AllowedCN` / `AllowedHostname`; the two exclude each other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// The leaf's subject CN must be exactly this.
    Cn(String),
    /// The leaf must be valid for this host (Go's `VerifyHostname`).
    Hostname(String),
}

/// One side's TLS settings, as etcd's `TLSInfo`; see the module doc.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// The certificate (chain) this member presents, as server and as client.
    pub cert_file: Option<PathBuf>,
    /// Its private key.
    pub key_file: Option<PathBuf>,
    /// CA bundle that verifies the other end's certificates.
    pub trusted_ca_file: Option<PathBuf>,
    /// Require client certificates (implied by `trusted_ca_file`, as in etcd).
    pub client_cert_auth: bool,
    /// Revoked certificates.
    pub crl_file: Option<PathBuf>,
    /// What the other end's certificate must name.
    pub allowed: Option<Allowed>,
    /// `--auto-tls` / `--peer-auto-tls`: generate a certificate when none is given.
    pub auto_tls: bool,
    /// Peer listeners only: check a client certificate's SANs against the address it
    /// dials from (etcd's `checkSAN`; off with
    /// `--experimental-peer-skip-client-san-verification`).
    pub check_client_san: bool,
}

impl TlsInfo {
    /// Whether a certificate is given or will be generated, i.e. whether `https://`
    /// URLs of this side can be served.
    pub fn configured(&self) -> bool {
        self.cert_file.is_some() || self.auto_tls
    }

    /// Settles the certificate: the given files, or with auto TLS and none given, a
    /// self-signed certificate for `hosts` (host:port of the listen URLs) made or
    /// reused under `<data_dir>/fixtures/{client,peer}`, valid `validity_years`.
    /// `None` when this side has no TLS at all.
    ///
    /// As in etcd, a generated certificate replaces the whole `TlsInfo`: no CA, no
    /// client-certificate requirement, no CRL.
    pub fn resolve(
        &self,
        side: Side,
        data_dir: &Path,
        hosts: &[String],
        validity_years: u32,
    ) -> Result<Option<Resolved>, TlsError> {
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            return Ok(Some(Resolved {
                side,
                info: self.clone(),
                cert: cert.clone(),
                key: key.clone(),
                self_signed: false,
            }));
        }
        if !self.auto_tls {
            return Ok(None);
        }
        let dir = data_dir.join("fixtures").join(side.fixtures());
        let (cert, key) = self_cert(&dir, hosts, validity_years, side == Side::Peer)?;
        Ok(Some(Resolved {
            side,
            info: TlsInfo {
                check_client_san: self.check_client_san,
                ..TlsInfo::default()
            },
            cert,
            key,
            self_signed: true,
        }))
    }
}

/// Protocol versions and cipher suites, for both sides (etcd's `--tls-min-version`,
/// `--tls-max-version`, `--cipher-suites`).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Offer TLS 1.2.
    pub tls12: bool,
    /// Offer TLS 1.3.
    pub tls13: bool,
    /// The TLS 1.2 suites to offer, in the given order; `None`: all of rustls's.
    pub tls12_suites: Option<Vec<CipherSuite>>,
}

/// Go's names of the TLS 1.2 suites rustls implements (both spellings of the
/// ChaCha20 suites, which Go renamed), in Go's order.
const TLS12_SUITES: &[(&str, CipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Go's TLS 1.3 suite names: accepted, and as in Go they change nothing.
const TLS13_NAMES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Suites Go (and so etcd) knows that rustls does not implement.
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// A TLS protocol version as etcd's `--tls-min-version`/`--tls-max-version` name it.
fn version(flag: &str, value: &str, default: u8) -> Result<u8, String> {
    match value.trim() {
        "" => Ok(default),
        "TLS1.2" => Ok(2),
        "TLS1.3" => Ok(3),
        v @ ("TLS1.0" | "TLS1.1") => Err(format!(
            "--{flag}={v}: gauntlet-server offers TLS1.2 and TLS1.3 only (rustls has no older version)"
        )),
        v => Err(format!(
            "--{flag}={v}: unexpected TLS version {v:?} (must be one of: TLS1.2, TLS1.3)"
        )),
    }
}

impl Policy {
    /// The policy from the flags' values; errors are one line naming the flag (etcd's
    /// wording where etcd has one).
    pub fn from_flags(cipher_suites: &[String], min: &str, max: &str) -> Result<Policy, String> {
        let min = version("tls-min-version", min, 2)?;
        // etcd 3.5's servers cap at TLS 1.2; asking for 1.3 as the minimum lifts it.
        let max = version("tls-max-version", max, min.max(2))?;
        if min > max {
            return Err(format!(
                "--tls-min-version=TLS1.{min} is greater than --tls-max-version=TLS1.{max}"
            ));
        }
        let mut tls12_suites = None;
        if !cipher_suites.is_empty() {
            if min == 3 {
                return Err(
                    "--cipher-suites: cipher suites cannot be configured when only TLS1.3 is enabled"
                        .into(),
                );
            }
            let mut chosen = Vec::new();
            for name in cipher_suites {
                if let Some((_, s)) = TLS12_SUITES.iter().find(|(n, _)| n == name) {
                    if !chosen.contains(s) {
                        chosen.push(*s);
                    }
                } else if TLS13_NAMES.contains(&name.as_str()) {
                    // Go's rule: TLS 1.3 suites are always on.
                } else if GO_ONLY_SUITES.contains(&name.as_str()) {
                    return Err(format!(
                        "--cipher-suites: {name} is not offered by gauntlet-server (rustls implements only ECDHE suites with AES-GCM or ChaCha20-Poly1305)"
                    ));
                } else {
                    return Err(format!(
                        "--cipher-suites: unexpected TLS cipher suite {name:?}"
                    ));
                }
            }
            tls12_suites = Some(chosen);
        }
        Ok(Policy {
            tls12: min <= 2,
            tls13: max >= 3,
            tls12_suites,
        })
    }

    /// ring's provider with this policy's suites, in the configured order.
    fn provider(&self) -> Arc<CryptoProvider> {
        let mut p = rustls::crypto::ring::default_provider();
        if let Some(chosen) = &self.tls12_suites {
            let all = std::mem::take(&mut p.cipher_suites);
            let tls13 = all.iter().filter(|s| s.tls13().is_some()).copied();
            let mut suites: Vec<_> = tls13.collect();
            for want in chosen {
                suites.extend(all.iter().filter(|s| s.suite() == *want).copied());
            }
            p.cipher_suites = suites;
        }
        Arc::new(p)
    }

    fn versions(&self) -> Vec<&'static rustls::SupportedProtocolVersion> {
        let mut v = Vec::new();
        if self.tls13 {
            v.push(&rustls::version::TLS13);
        }
        if self.tls12 {
            v.push(&rustls::version::TLS12);
        }
        v
    }
}

/// A side's TLS with its certificate settled ([`TlsInfo::resolve`]).
#[derive(Debug, Clone)]
pub struct Resolved {
    side: Side,
    info: TlsInfo,
    cert: PathBuf,
    key: PathBuf,
    /// The certificate was generated here: peers do not verify it (etcd's rule).
    self_signed: bool,
}

impl Resolved {
    /// This side's certificate, checked now and re-read when its files change.
    fn identity(&self, provider: &Arc<CryptoProvider>) -> Result<Arc<Reloading>, TlsError> {
        Reloading::new(self.side, &self.cert, &self.key, provider.clone())
    }

    fn roots(&self) -> Result<Option<rustls::RootCertStore>, TlsError> {
        let Some(ca) = &self.info.trusted_ca_file else {
            return Ok(None);
        };
        let flag = self.side.flag("ca");
        let mut roots = rustls::RootCertStore::empty();
        for c in read_certs(ca, flag)? {
            roots.add(c).map_err(|e| TlsError::File {
                flag,
                path: ca.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(Some(roots))
    }

    /// The server side of this member's `https://` listeners of this side.
    pub fn server_config(&self, policy: &Policy) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let what = match self.side {
            Side::Client => "client TLS",
            Side::Peer => "peer TLS",
        };
        let provider = policy.provider();
        let identity = self.identity(&provider)?;
        let verifier: Arc<dyn ClientCertVerifier> = match self.roots()? {
            Some(roots) => {
                let mut b =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                if let Some(crl) = &self.info.crl_file {
                    b = b
                        .with_crls(read_crls(crl, self.side.flag("crl"))?)
                        .allow_unknown_revocation_status();
                }
                let v = b.build().map_err(|e| TlsError::Verifier {
                    what,
                    reason: e.to_string(),
                })?;
                match &self.info.allowed {
                    Some(a) => Arc::new(AllowedClient {
                        inner: v,
                        allowed: a.clone(),
                    }),
                    None => v,
                }
            }
            None if self.info.client_cert_auth => {
                return Err(TlsError::Verifier {
                    what,
                    reason: format!("client certificate auth needs {}", self.side.flag("ca")),
                })
            }
            None => WebPkiClientVerifier::no_client_auth(),
        };
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&policy.versions())
            .map_err(|source| TlsError::Rustls { what, source })?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(identity);
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// The client side for dialing peers: presents this member's certificate and
    /// verifies theirs with the trusted CA (the system's roots without one), except a
    /// generated certificate, which verifies nothing (etcd's `InsecureSkipVerify`).
    pub fn client_config(&self, policy: &Policy) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let what = "peer TLS client";
        let provider = policy.provider();
        let algorithms = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = if self.self_signed {
            Arc::new(NoVerify(algorithms))
        } else {
            let roots = match self.roots()? {
                Some(r) => r,
                None => {
                    let mut r = rustls::RootCertStore::empty();
                    for c in rustls_native_certs::load_native_certs().certs {
                        let _ = r.add(c);
                    }
                    r
                }
            };
            let v = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| TlsError::Verifier {
                what,
                reason: e.to_string(),
            })?;
            match &self.info.allowed {
                Some(a) => Arc::new(AllowedServer {
                    inner: v,
                    allowed: a.clone(),
                }),
                None => v,
            }
        };
        let identity = self.identity(&provider)?;
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&policy.versions())
            .map_err(|source| TlsError::Rustls { what, source })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(identity);
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// The acceptor for this side's `https://` listeners.
    pub fn acceptor(&self, policy: &Policy) -> Result<Acceptor, TlsError> {
        Ok(Acceptor {
            tls: tokio_rustls::TlsAcceptor::from(self.server_config(policy)?),
            check_client_san: self.side == Side::Peer && self.info.check_client_san,
        })
    }
}

/// When a file last changed, as far as reloading cares.
type Stamp = Option<(std::time::SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// A certificate and key from files, loaded again for the next handshake after
/// either file changed (see the module doc): both the server's certificate and the
/// one a peer presents when dialing.
#[derive(Debug)]
struct Reloading {
    side: Side,
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: std::sync::Mutex<((Stamp, Stamp), Arc<rustls::sign::CertifiedKey>)>,
}

impl Reloading {
    /// Loads the pair now: a bad pair at start is an error, not a warning.
    fn new(
        side: Side,
        cert: &Path,
        key: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<Reloading>, TlsError> {
        let stamps = (stamp(cert), stamp(key));
        let loaded = load_pair(side, cert, key, &provider)?;
        Ok(Arc::new(Reloading {
            side,
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: std::sync::Mutex::new((stamps, loaded)),
        }))
    }

    fn current(&self) -> Arc<rustls::sign::CertifiedKey> {
        let stamps = (stamp(&self.cert), stamp(&self.key));
        let mut cur = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cur.0 != stamps {
            match load_pair(self.side, &self.cert, &self.key, &self.provider) {
                Ok(k) => {
                    tracing::info!(cert = %self.cert.display(), "reloaded a changed TLS certificate");
                    *cur = (stamps, k);
                }
                Err(e) => {
                    tracing::warn!("keeping the previous TLS certificate: {e}");
                    // Not again for every handshake until the files change once more.
                    cur.0 = stamps;
                }
            }
        }
        cur.1.clone()
    }
}

impl rustls::server::ResolvesServerCert for Reloading {
    fn resolve(
        &self,
        _client_hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current())
    }
}

impl rustls::client::ResolvesClientCert for Reloading {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// Reads a certificate chain and its key, checking that they belong together.
fn load_pair(
    side: Side,
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    let certs = read_certs(cert, side.flag("cert"))?;
    let bad_key = |reason: String| TlsError::File {
        flag: side.flag("key"),
        path: key.to_path_buf(),
        reason,
    };
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad_key(e.to_string()))?;
    let pair = rustls::sign::CertifiedKey::from_der(certs, der, provider)
        .map_err(|e| bad_key(e.to_string()))?;
    Ok(Arc::new(pair))
}

fn read_certs(path: &Path, flag: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::File {
        flag,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

fn read_crls(
    path: &Path,
    flag: &'static str,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::File {
        flag,
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    // etcd reads the file as DER; PEM is accepted too.
    if bytes.starts_with(b"-----BEGIN") {
        let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if crls.is_empty() {
            return Err(bad("no PEM X509 CRL in the file".into()));
        }
        Ok(crls)
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes)])
    }
}

/// etcd's `SelfCert`: reuses `cert.pem` and `key.pem` in `dir` when both exist, else
/// makes them. SANs are the hosts of `hosts` (host:port; IPs as IP SANs, names as DNS
/// SANs); the extended key usage is server auth, plus client auth for peers.
pub fn self_cert(
    dir: &Path,
    hosts: &[String],
    validity_years: u32,
    client_auth: bool,
) -> Result<(PathBuf, PathBuf), TlsError> {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    let fail = |reason: String| TlsError::SelfCert {
        dir: dir.to_path_buf(),
        reason,
    };
    if validity_years == 0 {
        return Err(fail(
            "--self-signed-cert-validity is invalid, it should be greater than 0".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert_path.is_file() && key_path.is_file() {
        return Ok((cert_path, key_path));
    }
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| fail(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "etcd");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if client_auth {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(365 * i64::from(validity_years));
    for host in hosts {
        let h = host_of(host);
        let san = match h.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                h.to_string()
                    .try_into()
                    .map_err(|e: rcgen::Error| fail(format!("host {h:?}: {e}")))?,
            ),
        };
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    let key = KeyPair::generate().map_err(|e| fail(e.to_string()))?;
    let not_after = params.not_after;
    let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
    tracing::warn!(
        dir = %dir.display(),
        %not_after,
        "automatically generated a self-signed certificate"
    );
    std::fs::write(&cert_path, cert.pem()).map_err(|e| fail(e.to_string()))?;
    write_private(&key_path, key.serialize_pem().as_bytes()).map_err(|e| fail(e.to_string()))?;
    Ok((cert_path, key_path))
}

/// Writes a key file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// The host of `host:port` (`[::1]:2379` gives `::1`), or the whole text.
fn host_of(hostport: &str) -> &str {
    let h = match hostport.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.is_empty() => h,
        _ => hostport,
    };
    h.trim_start_matches('[').trim_end_matches(']')
}

/// The leaf certificate's subject common name, if it has one.
fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// The IP and DNS subject alternative names of a certificate.
fn sans(der: &CertificateDer<'_>) -> (Vec<IpAddr>, Vec<String>) {
    use x509_parser::extensions::GeneralName;
    let (mut ips, mut dns) = (Vec::new(), Vec::new());
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return (ips, dns);
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push((*d).to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                    16 => ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    (ips, dns)
}

/// Go's `x509.Certificate.VerifyHostname`: an IP matches an IP SAN; a name matches a
/// DNS SAN, case-insensitively, with a `*.` wildcard standing for one whole label.
/// The common name is never consulted (Go ≥ 1.15).
fn valid_for_host(der: &CertificateDer<'_>, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let (ips, dns) = sans(der);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ips.contains(&ip);
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    dns.iter().any(|pattern| {
        let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
            None => pattern == host,
        }
    })
}

impl Allowed {
    fn admits(&self, leaf: &CertificateDer<'_>) -> bool {
        match self {
            Allowed::Cn(cn) => common_name(leaf).as_deref() == Some(cn.as_str()),
            Allowed::Hostname(h) => valid_for_host(leaf, h),
        }
    }
}

/// etcd's error for a certificate that passes the chain check but not the
/// allowed-CN/hostname rule.
fn not_allowed() -> rustls::Error {
    rustls::Error::General("client certificate authentication failed".into())
}

/// A client verifier that also applies an [`Allowed`] rule to the verified leaf.
#[derive(Debug)]
struct AllowedClient {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Allowed,
}

impl ClientCertVerifier for AllowedClient {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.allowed.admits(end_entity) {
            Ok(ok)
        } else {
            Err(not_allowed())
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A server verifier that also applies an [`Allowed`] rule to the verified leaf
/// (etcd's `VerifyPeerCertificate` sits in the base config of both ends).
#[derive(Debug)]
struct AllowedServer {
    inner: Arc<dyn ServerCertVerifier>,
    allowed: Allowed,
}

impl ServerCertVerifier for AllowedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ok = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if self.allowed.admits(end_entity) {
            Ok(ok)
        } else {
            Err(not_allowed())
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any server certificate (the handshake signature is still checked): how
/// etcd's peers dial a member whose certificate was generated (`InsecureSkipVerify`).
#[derive(Debug)]
struct NoVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The TLS side of one listener ([`Resolved::acceptor`]).
#[derive(Clone)]
pub struct Acceptor {
    tls: tokio_rustls::TlsAcceptor,
    /// etcd's `checkSAN` on peer listeners.
    check_client_san: bool,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("check_client_san", &self.check_client_san)
            .finish_non_exhaustive()
    }
}

/// What tonic puts into every request's extensions for a connection
/// ([`Connected::connect_info`]); [`client_cert_extension`] unpacks it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The socket's addresses.
    pub tcp: TcpConnectInfo,
    /// The verified client certificate's identity, if the client presented one.
    pub client_cert: Option<ClientCert>,
}

/// An accepted connection: plain TCP or TLS over TCP.
pub struct ServerConn {
    io: Io,
    info: ConnInfo,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl std::fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConn")
            .field("tls", &matches!(self.io, Io::Tls(_)))
            .field("info", &self.info)
            .finish()
    }
}

impl Connected for ServerConn {
    type ConnectInfo = ConnInfo;
    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for ServerConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The connections of `listener`, for tonic's `serve_with_incoming`: every socket
/// gets `TCP_NODELAY` (responses to multiplexed requests must not wait for an ACK)
/// and, with an acceptor, a TLS handshake within [`HANDSHAKE_TIMEOUT`] in its own
/// task, so a slow or silent client holds up nobody. Failed accepts and handshakes
/// are logged at debug and skipped: the stream never ends with an error, and it
/// stops accepting when the server drops it.
pub fn incoming(
    listener: TcpListener,
    acceptor: Option<Acceptor>,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<ServerConn>> {
    let (tx, rx) = tokio::sync::mpsc::channel(ACCEPT_QUEUE);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = tx.closed() => return,
            };
            let (socket, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("accepting a connection failed: {e}");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            if let Err(e) = socket.set_nodelay(true) {
                tracing::warn!("cannot set TCP_NODELAY on a connection from {remote}: {e}");
            }
            let tcp = TcpConnectInfo {
                local_addr: socket.local_addr().ok(),
                remote_addr: Some(remote),
            };
            match &acceptor {
                None => {
                    let conn = ServerConn {
                        io: Io::Plain(socket),
                        info: ConnInfo {
                            tcp,
                            client_cert: None,
                        },
                    };
                    if tx.send(Ok(conn)).await.is_err() {
                        return;
                    }
                }
                Some(a) => {
                    let (a, tx) = (a.clone(), tx.clone());
                    tokio::spawn(async move {
                        let Some(s) = handshake(&a, socket, remote).await else {
                            return;
                        };
                        let client_cert = s
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|leaf| ClientCert {
                                common_name: common_name(leaf).unwrap_or_default(),
                            });
                        if let Some(c) = &client_cert {
                            tracing::debug!(
                                cn = %c.common_name,
                                "TLS client {remote} presented a verified certificate"
                            );
                        }
                        let conn = ServerConn {
                            io: Io::Tls(Box::new(s)),
                            info: ConnInfo { tcp, client_cert },
                        };
                        let _ = tx.send(Ok(conn)).await;
                    });
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// The handshake within [`HANDSHAKE_TIMEOUT`], then on peer listeners etcd's
/// `checkSAN` (its DNS lookups within the same deadline). `None` when either fails,
/// which is logged at debug.
async fn handshake(
    a: &Acceptor,
    socket: TcpStream,
    remote: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let accept = a.tls.accept(socket).into_fallible();
    let s = match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
        Ok(Ok(s)) => s,
        Ok(Err((e, socket))) => {
            tracing::debug!("TLS handshake with {remote} failed: {e}");
            linger(socket).await;
            return None;
        }
        Err(_) => {
            tracing::debug!("TLS handshake with {remote} timed out after {HANDSHAKE_TIMEOUT:?}");
            return None;
        }
    };
    if a.check_client_san {
        if let Some(leaf) = s.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            let checked = tokio::time::timeout(HANDSHAKE_TIMEOUT, check_san(leaf, remote.ip()));
            match checked.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!("rejected the peer connection from {remote}: {e}");
                    return None;
                }
                Err(_) => {
                    tracing::debug!("rejected the peer connection from {remote}: resolving its certificate's DNS names timed out");
                    return None;
                }
            }
        }
    }
    Some(s)
}

/// Closes our side of a connection after a failed handshake (the alert is already
/// written) and drains what the client still sends, for at most [`LINGER`].
async fn linger(mut socket: TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let _ = socket.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// etcd's `checkSAN`: a client certificate with IP SANs must list the address it
/// dials from, unless it has DNS SANs, one of which must resolve to that address.
async fn check_san(leaf: &CertificateDer<'_>, remote: IpAddr) -> io::Result<()> {
    let (ips, dns) = sans(leaf);
    let remote = match remote {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(remote, IpAddr::V4),
        v4 => v4,
    };
    if ips.contains(&remote) {
        return Ok(());
    }
    if dns.is_empty() {
        if ips.is_empty() {
            return Ok(());
        }
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("x509: certificate is valid for {ips:?}, not {remote}"),
        ));
    }
    for name in &dns {
        if let Ok(addrs) = tokio::net::lookup_host((name.as_str(), 0)).await {
            if addrs.into_iter().any(|a| a.ip() == remote) {
                return Ok(());
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("tls: {remote:?} does not match any of DNSNames {dns:?}"),
    ))
}

/// Copies a connection's [`ConnInfo`] into each request as tonic's
/// [`TcpConnectInfo`] and, when present, the [`ClientCert`] (an axum layer on the
/// client router, so gRPC and the HTTP endpoints alike carry them).
pub async fn client_cert_extension(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(info) = req.extensions().get::<ConnInfo>().cloned() {
        req.extensions_mut().insert(info.tcp);
        if let Some(cert) = info.client_cert {
            req.extensions_mut().insert(cert);
        }
    }
    next.run(req).await
}

/// Dials a peer over TLS for tonic (`Endpoint::connect_with_connector_lazy`): TCP
/// with `TCP_NODELAY`, then the handshake, both within [`HANDSHAKE_TIMEOUT`]. The
/// endpoint's URI is the peer URL with `http://` (tonic refuses an `https://` URI
/// with a connector of one's own); the server name verified is the URL's host.
#[derive(Clone)]
pub struct PeerConnector {
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for PeerConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConnector").finish_non_exhaustive()
    }
}

impl PeerConnector {
    /// A connector presenting and verifying as `config` says.
    pub fn new(config: Arc<rustls::ClientConfig>) -> PeerConnector {
        PeerConnector {
            tls: tokio_rustls::TlsConnector::from(config),
        }
    }
}

type Dialed = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

impl tower_service::Service<http::Uri> for PeerConnector {
    type Response = Dialed;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Dialed>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let bad = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
            let host = uri
                .host()
                .ok_or_else(|| bad(format!("peer URL {uri} has no host")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri
                .port_u16()
                .ok_or_else(|| bad(format!("peer URL {uri} has no port")))?;
            let name = ServerName::try_from(host.clone())
                .map_err(|e| bad(format!("peer URL {uri}: {e}")))?;
            let dial = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                tls.connect(name, tcp).await
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, dial).await {
                Ok(Ok(s)) => Ok(hyper_util::rt::TokioIo::new(s)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("dialing {host}:{port} over TLS took over {HANDSHAKE_TIMEOUT:?}"),
                )),
            }
        })
    }
}

/// The common name of the request's verified client certificate, if it had one with a
/// common name (what [`crate::auth`] takes as the user under `--client-cert-auth`).
pub fn client_common_name(ext: &http::Extensions) -> Option<String> {
    ext.get::<ClientCert>()
        .map(|c| c.common_name.clone())
        .filter(|cn| !cn.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(cn: Option<&str>, sans: &[&str]) -> CertificateDer<'static> {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        }
        for s in sans {
            p.subject_alt_names.push(match s.parse::<IpAddr>() {
                Ok(ip) => rcgen::SanType::IpAddress(ip),
                Err(_) => rcgen::SanType::DnsName((*s).to_string().try_into().unwrap()),
            });
        }
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().clone()
    }

    /// GET `path` over HTTP/1.1 on `io`; the body.
    async fn get<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, path: &str) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        io.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        io.read_to_string(&mut out).await.unwrap();
        out.split_once("\r\n\r\n").unwrap().1.to_string()
    }

    /// The contract of [`ClientCert`], end to end through tonic's server as `main`
    /// builds it: a verified certificate's CN is in the request on a TLS connection,
    /// and nothing is on a plaintext one; the socket address is there on both.
    #[tokio::test]
    async fn a_verified_client_certificate_reaches_every_request() {
        use futures::TryStreamExt as _;
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).unwrap();
            p
        };
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca.self_signed(&ca_key).unwrap();
        let issue = |cn: &str, sans: Vec<String>| {
            let mut p = rcgen::CertificateParams::new(sans).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            let key = rcgen::KeyPair::generate().unwrap();
            (p.signed_by(&key, &ca, &ca_key).unwrap(), key)
        };
        let (server, server_key) = issue("server", vec!["localhost".into()]);
        let (alice, alice_key) = issue("alice", vec![]);
        let info = TlsInfo {
            cert_file: Some(write("server.pem", server.pem())),
            key_file: Some(write("server-key.pem", server_key.serialize_pem())),
            trusted_ca_file: Some(write("ca.pem", ca.pem())),
            client_cert_auth: true,
            ..TlsInfo::default()
        };
        let policy = Policy::from_flags(&[], "", "").unwrap();
        let acceptor = info
            .resolve(Side::Client, dir.path(), &[], 1)
            .unwrap()
            .unwrap()
            .acceptor(&policy)
            .unwrap();
        let whoami = |req: axum::extract::Request| async move {
            let cn = req
                .extensions()
                .get::<ClientCert>()
                .map(|c| c.common_name.clone());
            let addr = req
                .extensions()
                .get::<TcpConnectInfo>()
                .and_then(|t| t.remote_addr);
            format!("{cn:?} {}", addr.is_some())
        };
        let router = axum::Router::new()
            .route("/whoami", axum::routing::get(whoami))
            .layer(axum::middleware::from_fn(client_cert_extension));
        let mut ports = Vec::new();
        for acceptor in [Some(acceptor), None] {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            ports.push(l.local_addr().unwrap().port());
            let routes = tonic::service::Routes::from(router.clone());
            tokio::spawn(
                tonic::transport::Server::builder()
                    .accept_http1(true)
                    .add_routes(routes)
                    .serve_with_incoming(
                        incoming(l, acceptor).map_ok(crate::h2fix::FixAuthority::new),
                    ),
            );
        }

        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![alice.der().clone()],
            PrivateKeyDer::try_from(alice_key.serialize_der()).unwrap(),
        )
        .unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", ports[0])).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(get(tls, "/whoami").await, "Some(\"alice\") true");
        let plain = TcpStream::connect(("127.0.0.1", ports[1])).await.unwrap();
        assert_eq!(get(plain, "/whoami").await, "None true");
    }

    /// A certificate replaced on disk is the one the next handshake sees; a broken
    /// replacement keeps the last good one.
    #[tokio::test]
    async fn a_rotated_certificate_is_served_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let issue = |cn: &str| {
            let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            let k = rcgen::KeyPair::generate().unwrap();
            let c = p.self_signed(&k).unwrap();
            std::fs::write(&cert, c.pem()).unwrap();
            std::fs::write(&key, k.serialize_pem()).unwrap();
            c.der().clone()
        };
        let first = issue("first");
        let info = TlsInfo {
            cert_file: Some(cert.clone()),
            key_file: Some(key.clone()),
            ..TlsInfo::default()
        };
        let policy = Policy::from_flags(&[], "", "").unwrap();
        let acceptor = info
            .resolve(Side::Client, dir.path(), &[], 1)
            .unwrap()
            .unwrap()
            .acceptor(&policy)
            .unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let mut conns = incoming(l, Some(acceptor));
        tokio::spawn(async move {
            use futures::StreamExt as _;
            let mut held = Vec::new();
            while let Some(c) = conns.next().await {
                held.push(c);
            }
        });
        let served = || async {
            let client = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(
                rustls::crypto::ring::default_provider().signature_verification_algorithms,
            )))
            .with_no_client_auth();
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            tls.get_ref().1.peer_certificates().unwrap()[0].clone()
        };
        assert_eq!(served().await, first);
        // A different length, so the change shows even within one mtime tick.
        let second = issue("second, rotated");
        assert_eq!(served().await, second);
        std::fs::write(&key, "not a key, and longer than before: ........").unwrap();
        assert_eq!(served().await, second);
    }

    #[test]
    fn common_name_is_the_leafs_subject_cn() {
        assert_eq!(
            common_name(&cert_with(Some("root"), &[])).as_deref(),
            Some("root")
        );
        assert_eq!(common_name(&cert_with(None, &["a.example"])), None);
    }

    #[test]
    fn hostnames_match_as_go_verify_hostname() {
        let c = cert_with(
            Some("ignored.example"),
            &["*.etcd.example", "127.0.0.1", "node1"],
        );
        assert!(valid_for_host(&c, "m1.etcd.example"));
        assert!(valid_for_host(&c, "M1.Etcd.Example."));
        assert!(!valid_for_host(&c, "a.b.etcd.example"));
        assert!(!valid_for_host(&c, "etcd.example"));
        assert!(valid_for_host(&c, "127.0.0.1"));
        assert!(!valid_for_host(&c, "127.0.0.2"));
        assert!(valid_for_host(&c, "node1"));
        // Never the CN.
        assert!(!valid_for_host(&c, "ignored.example"));
        assert!(Allowed::Cn("ignored.example".into()).admits(&c));
        assert!(!Allowed::Cn("node1".into()).admits(&c));
    }

    #[tokio::test]
    async fn check_san_follows_etcd() {
        let ip_only = cert_with(None, &["127.0.0.1"]);
        assert!(check_san(&ip_only, "127.0.0.1".parse().unwrap())
            .await
            .is_ok());
        assert!(check_san(&ip_only, "::ffff:127.0.0.1".parse().unwrap())
            .await
            .is_ok());
        assert!(check_san(&ip_only, "10.0.0.1".parse().unwrap())
            .await
            .is_err());
        let none = cert_with(Some("x"), &[]);
        assert!(check_san(&none, "10.0.0.1".parse().unwrap()).await.is_ok());
        let dns = cert_with(None, &["localhost", "10.9.9.9"]);
        assert!(check_san(&dns, "127.0.0.1".parse().unwrap()).await.is_ok());
    }

    #[test]
    fn policy_follows_etcds_flags() {
        let p = Policy::from_flags(&[], "", "").unwrap();
        assert!(p.tls12 && !p.tls13 && p.tls12_suites.is_none());
        let p = Policy::from_flags(&[], "", "TLS1.3").unwrap();
        assert!(p.tls12 && p.tls13);
        let p = Policy::from_flags(&[], "TLS1.3", "").unwrap();
        assert!(!p.tls12 && p.tls13);
        let p = Policy::from_flags(
            &[
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305".into(),
                "TLS_AES_128_GCM_SHA256".into(),
            ],
            "",
            "TLS1.2",
        )
        .unwrap();
        assert!(p.tls12 && !p.tls13);
        assert_eq!(
            p.tls12_suites,
            Some(vec![
                CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
            ])
        );
        let names: Vec<_> = p
            .provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert!(names.contains(&CipherSuite::TLS13_AES_128_GCM_SHA256));
        assert!(names.contains(&CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256));
        assert!(!names.contains(&CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256));
        for (suites, min, max, want) in [
            (
                vec!["TLS_FOO"],
                "",
                "",
                "unexpected TLS cipher suite \"TLS_FOO\"",
            ),
            (
                vec!["TLS_RSA_WITH_AES_128_CBC_SHA"],
                "",
                "",
                "is not offered",
            ),
            (vec!["TLS_AES_128_GCM_SHA256"], "TLS1.3", "", "only TLS1.3"),
            (vec![], "TLS1.3", "TLS1.2", "is greater than"),
            (vec![], "TLS1.1", "", "TLS1.2 and TLS1.3 only"),
            (vec![], "", "SSL3", "unexpected TLS version"),
        ] {
            let suites: Vec<String> = suites.into_iter().map(String::from).collect();
            let e = Policy::from_flags(&suites, min, max).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn self_cert_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = dir.path().join("fixtures/peer");
        let hosts = ["127.0.0.1:2380".to_string(), "localhost:2380".to_string()];
        let (cert, key) = self_cert(&fixtures, &hosts, 2, true).unwrap();
        let pem = std::fs::read(&cert).unwrap();
        let der = CertificateDer::from_pem_slice(&pem).unwrap();
        assert!(valid_for_host(&der, "127.0.0.1"));
        assert!(valid_for_host(&der, "localhost"));
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let years = (parsed.validity().not_after.timestamp()
            - parsed.validity().not_before.timestamp())
            / (365 * 24 * 3600);
        assert_eq!(years, 2);
        let again = self_cert(&fixtures, &hosts, 2, true).unwrap();
        assert_eq!(std::fs::read(&again.0).unwrap(), pem);
        assert!(self_cert(&dir.path().join("x"), &hosts, 0, false).is_err());
    }
}
