//! TLS to every service paygate reaches, through rustls: PostgreSQL
//! (`sslmode=verify-full` and the rest of libpq's modes), Redis
//! (`rediss://`), RabbitMQ (`amqps://`), the providers plugins call and
//! merchants' callbacks. Each trusts the system's roots and, when
//! `PAYGATE_TLS_CA_FILE` is set, the operator's own CA besides (a private
//! PKI, a managed service's CA bundle).

use std::path::PathBuf;
use std::sync::Arc;

use crate::RefusedSetting;

/// The TLS settings shared by every connection.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct TlsSettings {
    /// A PEM file of CA certificates trusted besides the system's roots, by
    /// PostgreSQL (`sslmode=verify-ca|verify-full`), `rediss://`,
    /// `amqps://`, plugins' outbound HTTP and merchant notifications. For
    /// `rediss://` it is the one CA trusted.
    #[arg(long = "tls-ca-file", env = "PAYGATE_TLS_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

/// The CA certificates trusted besides the system's roots: none, or those
/// of `PAYGATE_TLS_CA_FILE`, read and checked once at start.
#[derive(Clone, Debug, Default)]
pub struct TrustedCa {
    pem: Option<Arc<[u8]>>,
}

impl TlsSettings {
    /// Reads the CA file; one that cannot be read or holds no certificate
    /// is refused, naming the setting.
    pub fn trusted(&self) -> Result<TrustedCa, RefusedSetting> {
        let Some(path) = &self.ca_file else {
            return Ok(TrustedCa::default());
        };
        let refused = |reason: String| RefusedSetting {
            setting: "PAYGATE_TLS_CA_FILE".into(),
            reason,
        };
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| refused(format!("cannot read {shown}: {e}")))?;
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certificates) if !certificates.is_empty() => Ok(TrustedCa {
                pem: Some(pem.into()),
            }),
            Ok(_) => Err(refused(format!("{shown} holds no PEM certificate"))),
            Err(e) => Err(refused(format!(
                "{shown} is not a PEM certificate bundle: {e}"
            ))),
        }
    }
}

impl TrustedCa {
    /// A CA read from PEM text, as [`TlsSettings::trusted`] reads it.
    pub fn from_pem(pem: &[u8]) -> Self {
        Self {
            pem: Some(pem.into()),
        }
    }

    /// The operator's CA certificates in PEM, if any.
    pub fn pem(&self) -> Option<&[u8]> {
        self.pem.as_deref()
    }

    /// For the plugins' HTTP client (`plugins::http_client_trusting`): the
    /// same certificates, in DER.
    pub fn roots(&self) -> Vec<rustls_pki_types::CertificateDer<'static>> {
        use rustls_pki_types::pem::PemObject;
        let Some(pem) = self.pem() else {
            return Vec::new();
        };
        (rustls_pki_types::CertificateDer::pem_slice_iter(pem))
            .filter_map(Result::ok)
            .collect()
    }

    /// For a `reqwest` client builder's `add_root_certificate`.
    pub fn certificates(&self) -> Vec<reqwest::Certificate> {
        self.pem()
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(pem).ok())
            .unwrap_or_default()
    }

    /// For RabbitMQ: the certificates trusted besides the system's.
    pub fn amqp(&self) -> lapin::tcp::OwnedTLSConfig {
        lapin::tcp::OwnedTLSConfig {
            identity: None,
            cert_chain: self
                .pem()
                .map(|pem| String::from_utf8_lossy(pem).into_owned()),
        }
    }

    /// A Redis client for `url`: with a `rediss://` URL and a CA set, that
    /// CA verifies the server.
    pub fn redis_client(&self, url: &str) -> redis::RedisResult<redis::Client> {
        match self.pem() {
            Some(pem) if url.starts_with("rediss://") => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            ),
            _ => redis::Client::open(url),
        }
    }

    /// `options` trusting this CA besides the system's roots (when the URL
    /// names no `sslrootcert` of its own).
    pub fn postgres(
        &self,
        url: &str,
        options: sqlx::postgres::PgConnectOptions,
    ) -> sqlx::postgres::PgConnectOptions {
        match self.pem() {
            Some(pem) if !url.contains("sslrootcert=") => {
                options.ssl_root_cert_from_pem(pem.to_vec())
            }
            _ => options,
        }
    }
}
