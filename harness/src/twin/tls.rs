//! TLS for the twin: rustls with ring, configured per role. A client verifier that
//! remembers what the peer presented (evidence says which certificate a caller saw),
//! Istio mTLS configs for sidecars and ztunnel, and the webhook's own server config.

use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::certs::{self, WorkloadCert};
use crate::provider::CertSummary;

/// ALPN a client sidecar offers when it originates Istio mTLS (istio
/// pilot/pkg/networking/util: `ALPNInMeshWithMxc` = istio-peer-exchange, istio).
pub const ISTIO_ALPN: &[&str] = &["istio-peer-exchange", "istio"];
/// ALPN the twin's ztunnels use between themselves. Real HBONE is HTTP/2 CONNECT over
/// mTLS on port 15008; the twin keeps the mTLS and the identities, not the framing.
pub const HBONE_ALPN: &str = "hbone";

/// The crypto provider every config uses (ring; no process-wide default is installed,
/// so many meshes and other code in the process never race on it).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server certificate verifier that records the presented leaf, then delegates to
/// webpki. In SPIFFE mode (Istio peer verification) the DNS name is not checked: Istio
/// verifies identities by URI SAN, so a chain to the mesh root with a `spiffe://` SAN
/// is accepted.
#[derive(Debug)]
pub struct RecordingVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    spiffe: bool,
    seen: Mutex<Option<CertSummary>>,
}

impl RecordingVerifier {
    /// A verifier trusting `roots` (an empty list trusts nothing: UnknownIssuer).
    pub fn new(roots: &[CertificateDer<'static>], spiffe: bool) -> Arc<Self> {
        let provider = provider();
        let mut store = RootCertStore::empty();
        for r in roots {
            let _ = store.add(r.clone());
        }
        let inner = if store.is_empty() {
            None
        } else {
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(&provider))
                .build()
                .ok()
        };
        Arc::new(Self {
            inner,
            provider,
            spiffe,
            seen: Mutex::new(None),
        })
    }

    /// What the peer presented, if it got that far.
    pub fn presented(&self) -> Option<CertSummary> {
        self.seen.lock().ok().and_then(|s| s.clone())
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let summary = certs::summarize(end_entity);
        let has_spiffe = summary.sans.iter().any(|s| s.starts_with("spiffe://"));
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(summary);
        }
        let Some(inner) = &self.inner else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.spiffe && has_spiffe => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client config with a recording verifier; `identity` adds a client certificate.
pub fn client_config(
    verifier: Arc<RecordingVerifier>,
    identity: Option<&WorkloadCert>,
    alpn: &[&str],
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.cert_chain(), id.private_key())
            .map_err(|e| e.to_string())?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

/// The inbound mTLS config of a sidecar or ztunnel: presents the workload's SPIFFE
/// chain (leaf + cluster intermediate) and REQUIRES a client certificate chaining to
/// the mesh root (Istio mTLS; PeerAuthentication reference).
pub fn istio_server_config(
    identity: &WorkloadCert,
    mesh_root: &CertificateDer<'static>,
) -> Result<Arc<ServerConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.add(mesh_root.clone()).map_err(|e| e.to_string())?;
    let client_verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| e.to_string())?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(identity.cert_chain(), identity.private_key())
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

/// A plain TLS server config from PEM (the webhook's `tls.crt` / `tls.key`).
pub fn server_config_from_pem(cert_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>, String> {
    let chain = certs::certs_from_pem(cert_pem)?;
    if chain.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("tls.key: {e}"))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

/// The SPIFFE ID in a peer's certificate chain, if any.
pub fn peer_spiffe(chain: Option<&[CertificateDer<'_>]>) -> Option<String> {
    let leaf = chain?.first()?;
    certs::summarize(leaf)
        .sans
        .into_iter()
        .find(|s| s.starts_with("spiffe://"))
}

/// `subject` / `issuer` / SANs of a certificate, on one line, for hops.
pub fn describe(cert: &CertSummary) -> String {
    let subject = if cert.subject.is_empty() {
        "(empty subject)"
    } else {
        cert.subject.as_str()
    };
    format!(
        "subject `{subject}`, issuer `{}`, SANs [{}]",
        cert.issuer,
        cert.sans.join(", ")
    )
}

/// A handshake error in words that do not change from one run to the next.
///
/// rustls reports an expired certificate with the verification time in seconds, so
/// two runs of the same scenario would differ. The certificate's end of validity is
/// in the evidence already (the presented certificate's `not_after`).
pub fn handshake_error(e: &std::io::Error) -> String {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ExpiredContext { .. } | rustls::CertificateError::Expired,
        )) => "invalid peer certificate: certificate expired (past its notAfter)".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod handshake_error_tests {
    use super::*;

    #[test]
    fn expired_certificates_are_described_without_the_verification_time() {
        let err = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ExpiredContext {
                time: rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    2_000_000,
                )),
                not_after: rustls_pki_types::UnixTime::since_unix_epoch(
                    std::time::Duration::from_secs(1_000_000),
                ),
            },
        ));
        let text = handshake_error(&err);
        assert_eq!(
            text,
            "invalid peer certificate: certificate expired (past its notAfter)"
        );
        let other = std::io::Error::other("boom");
        assert_eq!(handshake_error(&other), "boom");
    }
}
