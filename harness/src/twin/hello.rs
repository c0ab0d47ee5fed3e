//! Reading a connection's first bytes to decide what it is, as Envoy's TLS inspector
//! listener filter does (envoy `extensions/filters/listener/tls_inspector`): is it
//! TLS, and if so which ALPN and SNI did the client offer? The bytes read are returned
//! so they can be replayed ([`super::stream::Prefixed`]).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// TLS handshake record type (RFC 8446 5.1): the first byte of every ClientHello.
const TLS_HANDSHAKE: u8 = 0x16;
/// Give up inspecting after this many bytes (Envoy's inspector also caps its buffer).
const MAX_HELLO: usize = 16 * 1024;

/// What the first bytes of a connection were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstBytes {
    /// A TLS ClientHello.
    Tls {
        /// ALPN protocols offered.
        alpn: Vec<String>,
        /// SNI.
        sni: Option<String>,
    },
    /// Anything else (plain HTTP, garbage).
    Plain,
    /// The peer closed before sending anything.
    Closed,
}

impl FirstBytes {
    /// True when the ClientHello offers one of Istio's mTLS ALPN values
    /// (`istio-peer-exchange`, `istio`, `istio-http/1.1`, ...): what the inbound
    /// listener's mTLS filter chain matches on in PERMISSIVE mode (istio
    /// pilot/pkg/networking/core/listener_builder.go and
    /// pilot/pkg/networking/util `IstioAlpn`/`MtlsAlpn` values).
    pub fn is_istio_mtls(&self) -> bool {
        matches!(self, FirstBytes::Tls { alpn, .. } if alpn.iter().any(|a| a.starts_with("istio")))
    }

    /// True when the ClientHello offers the twin's HBONE ALPN (ztunnel-to-ztunnel).
    pub fn is_hbone(&self) -> bool {
        matches!(self, FirstBytes::Tls { alpn, .. } if alpn.iter().any(|a| a == super::tls::HBONE_ALPN))
    }
}

/// Reads until the ClientHello is complete (or the bytes are clearly not TLS).
pub async fn inspect<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<(FirstBytes, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut acceptor = rustls::server::Acceptor::default();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => return Ok((FirstBytes::Plain, buf)),
        };
        if n == 0 {
            let what = if buf.is_empty() {
                FirstBytes::Closed
            } else {
                FirstBytes::Plain
            };
            return Ok((what, buf));
        }
        let new = &chunk[..n];
        buf.extend_from_slice(new);
        if buf[0] != TLS_HANDSHAKE {
            return Ok((FirstBytes::Plain, buf));
        }
        let mut cursor: &[u8] = new;
        while !cursor.is_empty() {
            if acceptor.read_tls(&mut cursor)? == 0 {
                break;
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let hello = accepted.client_hello();
                let alpn = hello
                    .alpn()
                    .map(|it| {
                        it.map(|a| String::from_utf8_lossy(a).into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                let sni = hello.server_name().map(str::to_string);
                return Ok((FirstBytes::Tls { alpn, sni }, buf));
            }
            Ok(None) if buf.len() < MAX_HELLO => continue,
            _ => return Ok((FirstBytes::Plain, buf)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_client_hello_is_read_with_its_alpn_and_sni_and_plain_bytes_are_not_tls() {
        let (client_io, mut server_io) = tokio::io::duplex(64 * 1024);
        let verifier = super::super::tls::RecordingVerifier::new(&[], false);
        let config = super::super::tls::client_config(verifier, None, &["istio", "h2"]).unwrap();
        let name = rustls_pki_types::ServerName::try_from("svc.ns.svc").unwrap();
        let client = tokio::spawn(async move {
            let _ = tokio_rustls::TlsConnector::from(Arc::clone(&config))
                .connect(name, client_io)
                .await;
        });
        let (first, bytes) = inspect(&mut server_io).await.unwrap();
        assert_eq!(
            first,
            FirstBytes::Tls {
                alpn: vec!["istio".into(), "h2".into()],
                sni: Some("svc.ns.svc".into())
            }
        );
        assert!(first.is_istio_mtls() && !first.is_hbone());
        assert_eq!(bytes[0], TLS_HANDSHAKE);
        drop(server_io);
        let _ = client.await;

        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"POST /collector HTTP/1.1\r\n").await.unwrap();
        let (first, bytes) = inspect(&mut b).await.unwrap();
        assert_eq!(first, FirstBytes::Plain);
        assert!(bytes.starts_with(b"POST"));
    }
}
