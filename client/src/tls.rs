//! TLS for clients: pin the server's certificate by its SHA-256 fingerprint (development
//! certificates) or trust given CA certificates (real deployments).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::ClientError;

/// How the client decides to trust the server.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Accept exactly the certificate with this SHA-256 fingerprint of its DER encoding.
    Fingerprint([u8; 32]),
    /// Verify the chain against these CA certificates (DER).
    Roots(Vec<CertificateDer<'static>>),
}

impl Trust {
    /// The CA certificates in a PEM file.
    pub fn from_pem_file(path: &std::path::Path) -> Result<Self, ClientError> {
        let bad = |e: rustls::pki_types::pem::Error| {
            ClientError::Tls(format!("CA certificates in {}: {e}", path.display()))
        };
        let roots = CertificateDer::pem_file_iter(path)
            .map_err(bad)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        if roots.is_empty() {
            return Err(ClientError::Tls(format!(
                "no certificate in {}",
                path.display()
            )));
        }
        Ok(Self::Roots(roots))
    }

    /// The operating system's trusted CA certificates (on Debian, `/etc/ssl/certs`).
    pub fn system() -> Result<Self, ClientError> {
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            return Err(ClientError::Tls(format!(
                "no trusted CA certificates on this system ({:?})",
                found.errors
            )));
        }
        Ok(Self::Roots(found.certs))
    }
}

/// The SHA-256 fingerprint of a DER certificate, as lowercase hex with colons removed.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Parses a fingerprint as printed by `farsight serve` (hex, colons and case ignored).
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], ClientError> {
    let clean: String = text.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(clean.trim())
        .map_err(|e| ClientError::Tls(format!("fingerprint is not hex: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| ClientError::Tls("fingerprint must be 32 bytes of SHA-256".into()))
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn client_config(trust: &Trust) -> Result<rustls::ClientConfig, ClientError> {
    let tls = |e: rustls::Error| ClientError::Tls(e.to_string());
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?;
    let mut config = match trust {
        Trust::Fingerprint(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert {
                pin: *pin,
                algorithms: provider().signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Trust::Roots(roots) => {
            let mut store = rustls::RootCertStore::empty();
            for cert in roots {
                store.add(cert.clone()).map_err(tls)?;
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![farsight_protocol::ALPN.to_vec()];
    Ok(config)
}

/// Trusts one certificate by fingerprint; signatures are still verified, so the peer must
/// hold the certificate's private key.
#[derive(Debug)]
struct PinnedCert {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate fingerprint {} does not match the pinned {}",
                hex::encode(got),
                hex::encode(self.pin)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
