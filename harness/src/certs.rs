//! Certificates: the webhook's init-cert PKI, Istio-style mesh PKI, and the two
//! helpers every check uses to talk about certificates (a summary for evidence, and a
//! verification that behaves exactly as a TLS client does).
//!
//! Keys are ECDSA P-256 (rcgen's default): small, fast, and accepted by webpki.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};

use crate::provider::CertSummary;

/// The SPIFFE trust domain of the mesh (Istio's default, `cluster.local`).
pub const TRUST_DOMAIN: &str = "cluster.local";

/// Common name of the CA the init-cert job (or the harness playing it) makes.
pub const INIT_CERT_CA_NAME: &str = "meshconform init-cert CA";

/// A certificate could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate generation: {0}")]
pub struct CertError(pub String);

impl From<rcgen::Error> for CertError {
    fn from(e: rcgen::Error) -> Self {
        CertError(e.to_string())
    }
}

impl From<CertError> for crate::error::Error {
    fn from(e: CertError) -> Self {
        crate::error::Error::Tool {
            tool: "rcgen".into(),
            message: e.0,
        }
    }
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// A serving certificate: from an hour ago (clock skew) to a year from now.
    pub fn server_default() -> Self {
        Self::around_now(Duration::hours(1), Duration::days(365))
    }

    /// An Istio workload certificate: short-lived, 24 hours (istiod's default).
    pub fn workload_default() -> Self {
        Self::around_now(Duration::hours(1), Duration::hours(24))
    }

    /// A certificate whose validity ended a day ago (for the expired-cert fault).
    pub fn expired() -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::days(366),
            not_after: now - Duration::days(1),
        }
    }

    /// From `before` ago to `after` from now.
    pub fn around_now(before: Duration, after: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - before,
            not_after: now + after,
        }
    }

    /// A window covering this one and the next ten years: what a CA gets, so that a
    /// leaf's own validity (expired or not) is what a verifier complains about.
    fn widened_for_ca(self) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: self.not_before.min(now - Duration::hours(1)),
            not_after: self.not_after.max(now + Duration::days(3650)),
        }
    }
}

impl Default for Validity {
    fn default() -> Self {
        Self::server_default()
    }
}

/// A certificate authority: its certificate and the key that signs with it.
#[derive(Debug)]
pub struct CertAuthority {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
    pem: String,
}

impl CertAuthority {
    /// A self-signed root CA.
    pub fn root(common_name: &str, validity: Validity) -> Result<Self, CertError> {
        let key = KeyPair::generate()?;
        let params = ca_params(
            &unique(common_name),
            validity,
            BasicConstraints::Unconstrained,
        );
        let cert = params.self_signed(&key)?;
        Ok(Self {
            params,
            key,
            pem: cert.pem(),
            der: cert.der().clone(),
        })
    }

    /// An intermediate CA signed by `parent`; it may sign leaves only (path length 0).
    pub fn intermediate(
        common_name: &str,
        parent: &CertAuthority,
        validity: Validity,
    ) -> Result<Self, CertError> {
        let key = KeyPair::generate()?;
        let mut params = ca_params(common_name, validity, BasicConstraints::Constrained(0));
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &parent.issuer())?;
        Ok(Self {
            params,
            key,
            pem: cert.pem(),
            der: cert.der().clone(),
        })
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The CA's private key, PEM (PKCS#8): Istio's `cacerts` needs it as `ca-key.pem`
    /// so istiod can sign with the plugged-in intermediate.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// Signs a leaf certificate for a fresh key.
    fn issue(&self, params: &CertificateParams) -> Result<IssuedLeaf, CertError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer())?;
        Ok(IssuedLeaf {
            der: cert.der().clone(),
            pem: cert.pem(),
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A CA name with a random suffix. Two CAs with one name make webpki match the
/// issuer by name and then fail on the signature (`InvalidSignatureForPublicKey`); with
/// distinct names a foreign CA reads as what it is, `UnknownIssuer`.
fn unique(common_name: &str) -> String {
    format!("{common_name} {:06x}", fastrand::u32(..0x0100_0000))
}

fn ca_params(common_name: &str, validity: Validity, limit: BasicConstraints) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(limit);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params
}

/// What every leaf the harness issues shares: a TLS key's usages, the extended usages
/// given, an authority key identifier (so verifiers find the issuer by key, not only
/// by name), and the validity window.
fn set_leaf_usage(
    params: &mut CertificateParams,
    extended: Vec<ExtendedKeyUsagePurpose>,
    validity: Validity,
) {
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = extended;
    params.use_authority_key_identifier_extension = true;
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
}

/// A leaf certificate and its key, in both encodings.
#[derive(Debug, Clone)]
struct IssuedLeaf {
    der: CertificateDer<'static>,
    pem: String,
    key_der: Vec<u8>,
    key_pem: String,
}

/// The DNS names of a Kubernetes Service, as the init-cert job puts them in the
/// serving certificate: `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// The webhook's PKI as the init-cert job makes it: a CA and a serving certificate
/// signed by it for the webhook Service's DNS names (EKU serverAuth).
#[derive(Debug, Clone)]
pub struct WebhookPki {
    ca: Arc<CertAuthority>,
    dns_names: Vec<String>,
    leaf: IssuedLeaf,
}

impl WebhookPki {
    /// A new CA and a serving certificate for `service` in `namespace`.
    pub fn generate(service: &str, namespace: &str, validity: Validity) -> Result<Self, CertError> {
        Self::for_dns_names(
            INIT_CERT_CA_NAME,
            &service_dns_names(service, namespace),
            validity,
        )
    }

    /// A new CA named `ca_common_name` and a serving certificate for `dns_names` (what
    /// cert-manager issues for a Certificate's `dnsNames`).
    pub fn for_dns_names(
        ca_common_name: &str,
        dns_names: &[String],
        validity: Validity,
    ) -> Result<Self, CertError> {
        let ca = CertAuthority::root(ca_common_name, validity.widened_for_ca())?;
        Self::signed_by(Arc::new(ca), dns_names, validity)
    }

    /// A serving certificate for `dns_names` signed by an existing CA.
    pub fn signed_by(
        ca: Arc<CertAuthority>,
        dns_names: &[String],
        validity: Validity,
    ) -> Result<Self, CertError> {
        let first = dns_names
            .first()
            .ok_or_else(|| CertError("a serving certificate needs at least one DNS name".into()))?;
        let mut params = CertificateParams::new(dns_names.to_vec())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        // The most specific name the API server dials (`svc.ns.svc`) when there is one.
        let common_name = dns_names
            .iter()
            .find(|n| n.ends_with(".svc"))
            .unwrap_or(first);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name.as_str());
        set_leaf_usage(
            &mut params,
            vec![ExtendedKeyUsagePurpose::ServerAuth],
            validity,
        );
        let leaf = ca.issue(&params)?;
        Ok(Self {
            ca,
            dns_names: dns_names.to_vec(),
            leaf,
        })
    }

    /// A new serving certificate for the same names, signed by the same CA (rotation).
    pub fn reissue(&self, validity: Validity) -> Result<Self, CertError> {
        Self::signed_by(Arc::clone(&self.ca), &self.dns_names, validity)
    }

    /// The CA, for signing more certificates with it.
    pub fn ca(&self) -> &Arc<CertAuthority> {
        &self.ca
    }

    /// The CA certificate, PEM (`ca.crt`, and the caBundle).
    pub fn ca_pem(&self) -> &str {
        self.ca.pem()
    }

    /// The serving certificate, PEM (`tls.crt`).
    pub fn cert_pem(&self) -> &str {
        &self.leaf.pem
    }

    /// The serving key, PKCS#8 PEM (`tls.key`).
    pub fn key_pem(&self) -> &str {
        &self.leaf.key_pem
    }

    /// The serving certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.leaf.der
    }

    /// The chain a server presents (the leaf; the CA is the client's trust anchor).
    pub fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.leaf.der.clone()]
    }

    /// The serving key, for rustls.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf.key_der.clone()))
    }

    /// The DNS names the certificate carries.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }
}

/// The SPIFFE identity Istio gives a workload: `spiffe://cluster.local/ns/<ns>/sa/<sa>`.
pub fn spiffe_id(namespace: &str, service_account: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}")
}

/// Istio-style mesh PKI for a multi-primary mesh: one shared root and one
/// intermediate CA per cluster (Istio docs, "Plug in CA Certificates": each cluster's
/// istiod signs with its own intermediate under a common root).
#[derive(Debug)]
pub struct MeshPki {
    root: CertAuthority,
    intermediates: BTreeMap<String, Arc<CertAuthority>>,
}

impl MeshPki {
    /// A root CA and one intermediate per cluster.
    pub fn new<S: AsRef<str>>(clusters: &[S]) -> Result<Self, CertError> {
        let ca_validity = Validity::around_now(Duration::hours(1), Duration::days(3650));
        let root = CertAuthority::root("meshconform mesh root CA", ca_validity)?;
        let mut intermediates = BTreeMap::new();
        for cluster in clusters {
            let cluster = cluster.as_ref();
            let ca = CertAuthority::intermediate(
                &format!("meshconform intermediate CA for cluster {cluster}"),
                &root,
                ca_validity,
            )?;
            intermediates.insert(cluster.to_string(), Arc::new(ca));
        }
        Ok(Self {
            root,
            intermediates,
        })
    }

    /// The root certificate, PEM (every proxy's trust anchor).
    pub fn root_pem(&self) -> &str {
        self.root.pem()
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &CertificateDer<'static> {
        self.root.der()
    }

    /// A rustls root store holding the mesh root.
    pub fn root_store(&self) -> Result<rustls::RootCertStore, CertError> {
        let mut store = rustls::RootCertStore::empty();
        store
            .add(self.root.der().clone())
            .map_err(|e| CertError(format!("mesh root rejected by rustls: {e}")))?;
        Ok(store)
    }

    /// The intermediate CA of a cluster.
    pub fn intermediate(&self, cluster: &str) -> Option<&CertAuthority> {
        self.intermediates.get(cluster).map(Arc::as_ref)
    }

    /// Issues a workload certificate for `namespace`/`service_account`, signed by
    /// `cluster`'s intermediate (what istiod does for a proxy's CSR).
    pub fn issue_workload(
        &self,
        cluster: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<WorkloadCert, CertError> {
        let ca = self.intermediates.get(cluster).ok_or_else(|| {
            CertError(format!(
                "the mesh PKI has no intermediate CA for cluster `{cluster}`"
            ))
        })?;
        let spiffe = spiffe_id(namespace, service_account);
        let mut params = CertificateParams::default();
        // Istio workload certificates have an empty subject; identity is the URI SAN.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(spiffe.as_str().try_into()?)];
        set_leaf_usage(
            &mut params,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            Validity::workload_default(),
        );
        let leaf = ca.issue(&params)?;
        Ok(WorkloadCert {
            spiffe_id: spiffe,
            cluster: cluster.to_string(),
            leaf,
            intermediate: Arc::clone(ca),
        })
    }
}

/// A workload's mesh identity: leaf certificate, its key, and the intermediate.
#[derive(Debug, Clone)]
pub struct WorkloadCert {
    spiffe_id: String,
    cluster: String,
    leaf: IssuedLeaf,
    intermediate: Arc<CertAuthority>,
}

impl WorkloadCert {
    /// `spiffe://cluster.local/ns/<ns>/sa/<sa>`.
    pub fn spiffe_id(&self) -> &str {
        &self.spiffe_id
    }

    /// The cluster whose intermediate signed it.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The chain a proxy presents: leaf, then its cluster's intermediate.
    pub fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.leaf.der.clone(), self.intermediate.der().clone()]
    }

    /// The chain, PEM (leaf first).
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.leaf.pem, self.intermediate.pem())
    }

    /// The leaf certificate, DER.
    pub fn leaf_der(&self) -> &CertificateDer<'static> {
        &self.leaf.der
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.leaf.key_pem
    }

    /// The private key, for rustls.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf.key_der.clone()))
    }
}

/// A certificate as a person reads it in evidence. A DER blob that is not a
/// certificate yields a summary whose subject says so.
pub fn summarize(cert_der: &[u8]) -> CertSummary {
    let cert = match x509_parser::parse_x509_certificate(cert_der) {
        Ok((_, cert)) => cert,
        Err(e) => {
            return CertSummary {
                subject: format!("(not an X.509 certificate: {e})"),
                ..CertSummary::default()
            };
        }
    };
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            use x509_parser::extensions::GeneralName;
            match name {
                GeneralName::DNSName(n) | GeneralName::URI(n) => sans.push((*n).to_string()),
                GeneralName::IPAddress(bytes) => sans.push(ip_to_string(bytes)),
                other => sans.push(other.to_string()),
            }
        }
    }
    let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| cert.validity().not_after.to_string());
    CertSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        not_after,
    }
}

fn ip_to_string(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
        16 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(bytes);
            std::net::Ipv6Addr::from(octets).to_string()
        }
        _ => format!("(IP address of {} bytes)", bytes.len()),
    }
}

/// Every certificate in a PEM text, DER-decoded.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {e}"))
}

/// A summary of every certificate in a PEM text (a caBundle, a `tls.crt` chain).
pub fn summarize_pem(pem: &str) -> Result<Vec<CertSummary>, String> {
    Ok(certs_from_pem(pem)?
        .iter()
        .map(|der| summarize(der))
        .collect())
}

/// Verifies a served chain exactly as a TLS client (the API server, the backfill)
/// would: path to one of the caBundle's certificates, EKU serverAuth, validity at
/// `now`, and `dns_name` among the leaf's SANs. The error is webpki's own text
/// (`UnknownIssuer`, `CertExpired { .. }`, `CertNotValidForName(..)`).
pub fn verify_server_cert(
    ca_bundle_pem: &str,
    cert_chain_pem: &str,
    dns_name: &str,
    now: SystemTime,
) -> Result<(), String> {
    let roots = certs_from_pem(ca_bundle_pem).map_err(|e| format!("caBundle: {e}"))?;
    if roots.is_empty() {
        return Err("caBundle holds no PEM certificate".into());
    }
    let anchors = roots
        .iter()
        .map(|der| webpki::anchor_from_trusted_cert(der).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("caBundle: {e}"))?;
    let chain = certs_from_pem(cert_chain_pem).map_err(|e| format!("served chain: {e}"))?;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| "served chain holds no PEM certificate".to_string())?;
    let end_entity = webpki::EndEntityCert::try_from(leaf).map_err(|e| e.to_string())?;
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or(StdDuration::ZERO);
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            UnixTime::since_unix_epoch(since_epoch),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(dns_name)
        .map_err(|e| format!("`{dns_name}` is not a valid server name: {e}"))?;
    end_entity
        .verify_is_valid_for_subject_name(&name)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki() -> WebhookPki {
        WebhookPki::generate("cz-cz-webhook", "cza", Validity::default()).unwrap()
    }

    #[test]
    fn server_cert_verifies_for_each_service_name_only() {
        let pki = pki();
        let now = SystemTime::now();
        for name in [
            "cz-cz-webhook",
            "cz-cz-webhook.cza",
            "cz-cz-webhook.cza.svc",
            "cz-cz-webhook.cza.svc.cluster.local",
        ] {
            verify_server_cert(pki.ca_pem(), pki.cert_pem(), name, now)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let err =
            verify_server_cert(pki.ca_pem(), pki.cert_pem(), "other.cza.svc", now).unwrap_err();
        assert!(err.contains("CertNotValidForName"), "{err}");
    }

    #[test]
    fn server_cert_does_not_verify_against_another_ca() {
        let pki = pki();
        let other = WebhookPki::generate("x", "y", Validity::default()).unwrap();
        let err = verify_server_cert(
            other.ca_pem(),
            pki.cert_pem(),
            "cz-cz-webhook.cza.svc",
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
    }

    #[test]
    fn expired_server_cert_does_not_verify() {
        let pki = WebhookPki::generate("wh", "ns", Validity::expired()).unwrap();
        let err = verify_server_cert(pki.ca_pem(), pki.cert_pem(), "wh.ns.svc", SystemTime::now())
            .unwrap_err();
        assert!(err.contains("CertExpired"), "{err}");
    }

    #[test]
    fn valid_cert_is_rejected_at_a_time_past_its_end() {
        let pki = pki();
        let later = SystemTime::now() + StdDuration::from_secs(400 * 24 * 3600);
        let err = verify_server_cert(pki.ca_pem(), pki.cert_pem(), "cz-cz-webhook.cza.svc", later)
            .unwrap_err();
        assert!(err.contains("CertExpired"), "{err}");
    }

    #[test]
    fn reissue_keeps_the_ca_and_changes_the_key() {
        let pki = pki();
        let rotated = pki.reissue(Validity::default()).unwrap();
        assert_eq!(pki.ca_pem(), rotated.ca_pem());
        assert_ne!(pki.key_pem(), rotated.key_pem());
        verify_server_cert(
            pki.ca_pem(),
            rotated.cert_pem(),
            "cz-cz-webhook.cza.svc",
            SystemTime::now(),
        )
        .unwrap();
    }

    #[test]
    fn summary_names_subject_issuer_and_sans() {
        let pki = pki();
        let s = summarize(pki.cert_der());
        assert!(s.subject.contains("cz-cz-webhook.cza.svc"), "{s:?}");
        assert!(s.issuer.contains(INIT_CERT_CA_NAME), "{s:?}");
        assert_eq!(s.sans, service_dns_names("cz-cz-webhook", "cza"));
        assert!(
            OffsetDateTime::parse(&s.not_after, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{s:?}"
        );
        let bad = summarize(b"not a certificate");
        assert!(bad.subject.contains("not an X.509"), "{bad:?}");
    }

    #[test]
    fn workload_cert_carries_spiffe_and_chains_root_intermediate_leaf() {
        let mesh = MeshPki::new(&["alpha", "beta"]).unwrap();
        let cert = mesh
            .issue_workload("alpha", "cza", "cz-cz-aggregator")
            .unwrap();
        assert_eq!(
            cert.spiffe_id(),
            "spiffe://cluster.local/ns/cza/sa/cz-cz-aggregator"
        );
        let leaf = summarize(cert.leaf_der());
        assert_eq!(leaf.sans, vec![cert.spiffe_id().to_string()]);
        assert!(leaf.issuer.contains("cluster alpha"), "{leaf:?}");

        let chain = cert.cert_chain();
        assert_eq!(chain.len(), 2);
        let intermediate = summarize(&chain[1]);
        assert!(
            intermediate.subject.contains("cluster alpha"),
            "{intermediate:?}"
        );
        assert!(
            intermediate.issuer.contains("mesh root CA"),
            "{intermediate:?}"
        );

        // webpki builds root -> intermediate -> leaf for client auth.
        let anchor = webpki::anchor_from_trusted_cert(mesh.root_der()).unwrap();
        let ee = webpki::EndEntityCert::try_from(&chain[0]).unwrap();
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            std::slice::from_ref(&anchor),
            &chain[1..],
            UnixTime::now(),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .unwrap();
        // Without the intermediate there is no path to the root.
        let err = ee
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &[anchor],
                &[],
                UnixTime::now(),
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .err();
        assert_eq!(err, Some(webpki::Error::UnknownIssuer));
        assert!(mesh.issue_workload("gamma", "cza", "x").is_err());
        assert_eq!(mesh.root_store().unwrap().len(), 1);
    }

    #[test]
    fn keys_load_into_rustls() {
        let pki = pki();
        let provider = rustls::crypto::ring::default_provider();
        let config = rustls::ServerConfig::builder_with_provider(provider.into())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(pki.cert_chain(), pki.private_key());
        assert!(config.is_ok(), "{:?}", config.err());
    }
}
