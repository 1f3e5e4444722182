//! TLS on the client and peer listeners.

/// The verified client certificate of the connection a request came on, put into the
/// request's extensions by the TLS acceptor.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// The certificate subject's common name.
    pub common_name: String,
}

/// The common name of the request's verified client certificate, if it had one.
pub fn client_common_name(ext: &http::Extensions) -> Option<String> {
    ext.get::<ClientCert>().map(|c| c.common_name.clone())
}
