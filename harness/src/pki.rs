//! Certificates for test clusters, made on the spot with rcgen (no private key is ever
//! committed): a CA, server and peer certificates valid for `127.0.0.1`, `::1` and
//! `localhost`, and client certificates with any common name (under etcd's
//! `--client-cert-auth`, the common name is the user).
//!
//! ```no_run
//! # fn demo() -> gauntlet_harness::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let ca = gauntlet_harness::pki::Ca::new("test CA")?;
//! let server = ca.issue(dir.path(), "server", "server")?;
//! let alice = ca.issue(dir.path(), "alice", "alice")?;
//! let ca_file = ca.write(dir.path(), "ca.pem")?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

use crate::error::{HarnessError, Result};

fn bad(e: rcgen::Error) -> HarnessError {
    HarnessError::Invalid(format!("making certificates: {e}"))
}

/// A certificate authority held in memory, to issue certificates with.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn write_file(dir: &Path, name: &str, pem: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, pem).map_err(|e| HarnessError::io(format!("writing {}", p.display()), e))?;
    Ok(p)
}

impl Ca {
    /// A fresh self-signed CA named `name`.
    pub fn new(name: &str) -> Result<Ca> {
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(bad)?;
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().map_err(bad)?;
        let cert = p.self_signed(&key).map_err(bad)?;
        Ok(Ca { cert, key })
    }

    /// Writes the CA certificate (what clients and servers trust) as `dir/name`.
    pub fn write(&self, dir: &Path, name: &str) -> Result<PathBuf> {
        write_file(dir, name, &self.cert.pem())
    }

    /// Issues a certificate with common name `cn`, valid for 127.0.0.1, ::1 and
    /// localhost (so it serves as a server, peer or client certificate alike), written
    /// as `dir/<file>.pem` and `dir/<file>-key.pem`.
    pub fn issue(&self, dir: &Path, file: &str, cn: &str) -> Result<Issued> {
        self.issue_for(dir, file, cn, &[])
    }

    /// [`Ca::issue`], valid for `ips` too (members on their own addresses).
    pub fn issue_for(
        &self,
        dir: &Path,
        file: &str,
        cn: &str,
        ips: &[std::net::IpAddr],
    ) -> Result<Issued> {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).map_err(bad)?;
        p.distinguished_name.push(DnType::CommonName, cn);
        for ip in ["127.0.0.1", "::1"] {
            if let Ok(ip) = ip.parse() {
                p.subject_alt_names.push(SanType::IpAddress(ip));
            }
        }
        for ip in ips {
            p.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        let key = KeyPair::generate().map_err(bad)?;
        let cert = p.signed_by(&key, &self.cert, &self.key).map_err(bad)?;
        Ok(Issued {
            cert: write_file(dir, &format!("{file}.pem"), &cert.pem())?,
            key: write_file(dir, &format!("{file}-key.pem"), &key.serialize_pem())?,
        })
    }
}
