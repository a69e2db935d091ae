//! Node identity: a certificate, issued by the cluster's certificate authority, that names the
//! node it belongs to, and the mutually authenticated TLS that probes run over.
//!
//! **The choice.** A node proves who it is with an X.509 certificate whose subject alternative
//! name (a DNS name) and common name are its node id (`n3`), signed by the cluster's CA, and the
//! private key that goes with it. A key the node merely proves (a raw public key registered in
//! the store) would need its own distribution and revocation; certificates reuse what etcd
//! already needs for its client TLS (the same CA can sign etcd's server and client
//! certificates, and etcd takes a client certificate's common name as its user name, so node
//! `n3` is etcd user `n3`), and every operator's tooling knows them.
//!
//! **What it proves.** A probe of node `n3` is a TLS 1.3 handshake in which the answering
//! process must present a certificate of the cluster's CA naming `n3` (a valid certificate
//! naming another node, one of another CA, or none at all fails the handshake, and the probe
//! counts as unreachable), and the probing process must present a certificate of the same CA
//! (the answering side refuses a handshake without one). A node refuses to start with a
//! certificate that does not name its own node id ([`NodeIdentity::new`]). Slots and proposals
//! live in the store: there, the store's own authentication (etcd's client-certificate TLS and a
//! role limited to the cluster's prefix) keeps out a process without credentials.
//!
//! **The throwaway CA.** [`Authority`] generates a CA and issues certificates (`membership
//! certs`, and the tests): for loopback clusters, tests and trials. Production uses the
//! operator's own PKI; a certificate is accepted from any CA as long as it names the node.

use membership_core::NodeId;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::path::Path;
use std::sync::Arc;

/// The most certificates read from one PEM file (a chain, or a bundle of CAs).
pub const PEM_CERTIFICATES_MAX: usize = 16;

/// The largest PEM file read, in bytes.
pub const PEM_FILE_BYTES_MAX: u64 = 1 << 20;

/// How long a certificate [`Authority::issue`] makes is valid, in days.
pub const CERTIFICATE_VALID_DAYS: i64 = 365;

/// How long the CA [`Authority::generate`] makes is valid, in days.
pub const AUTHORITY_VALID_DAYS: i64 = 3_650;

/// What was wrong with a node's credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read (missing, unreadable, too large).
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A PEM text did not hold what it should (`what`: "the CA certificates", ...).
    #[error("{what}: {reason}")]
    Pem {
        /// Which of the credentials.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The certificate does not prove the node's identity: not signed by the CA, expired, or
    /// naming another node.
    #[error("the certificate does not prove node {node}: {reason}")]
    NotThisNode {
        /// The node the certificate was meant to prove.
        node: NodeId,
        /// What the verification said.
        reason: String,
    },
    /// The TLS configuration could not be built from the credentials.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// A certificate or key could not be generated or written.
    #[error("certificate generation: {0}")]
    Generate(String),
}

/// The PEM texts of a node's credentials: the CA certificates it trusts, its certificate chain
/// (its own certificate first), and its private key.
#[derive(Debug)]
pub struct Credentials {
    authorities: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Credentials {
    fn clone(&self) -> Credentials {
        Credentials {
            authorities: self.authorities.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// Reads a PEM file, at most [`PEM_FILE_BYTES_MAX`] bytes.
fn read_pem(path: &Path) -> Result<Vec<u8>, IdentityError> {
    let file_error = |reason: String| IdentityError::File {
        path: path.display().to_string(),
        reason,
    };
    let length = std::fs::metadata(path)
        .map_err(|e| file_error(e.to_string()))?
        .len();
    if length > PEM_FILE_BYTES_MAX {
        return Err(file_error(format!(
            "{length} bytes, more than {PEM_FILE_BYTES_MAX}"
        )));
    }
    std::fs::read(path).map_err(|e| file_error(e.to_string()))
}

/// The certificates of a PEM text: at least one, at most [`PEM_CERTIFICATES_MAX`].
fn certificates(
    what: &'static str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let mut found = Vec::new();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let certificate = certificate.map_err(|e| IdentityError::Pem {
            what,
            reason: e.to_string(),
        })?;
        if found.len() == PEM_CERTIFICATES_MAX {
            return Err(IdentityError::Pem {
                what,
                reason: format!("more than {PEM_CERTIFICATES_MAX} certificates"),
            });
        }
        found.push(certificate);
    }
    if found.is_empty() {
        return Err(IdentityError::Pem {
            what,
            reason: "no certificate".to_string(),
        });
    }
    debug_assert!(!found.is_empty() && found.len() <= PEM_CERTIFICATES_MAX);
    Ok(found)
}

impl Credentials {
    /// Credentials from PEM texts: the trusted CA certificates, the certificate chain (the
    /// node's own certificate first), the private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(
        authorities_pem: &[u8],
        chain_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<Credentials, IdentityError> {
        let authorities = certificates("the CA certificates", authorities_pem)?;
        let chain = certificates("the certificate", chain_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| IdentityError::Pem {
            what: "the private key",
            reason: e.to_string(),
        })?;
        Ok(Credentials {
            authorities,
            chain,
            key,
        })
    }

    /// Credentials from PEM files (each at most [`PEM_FILE_BYTES_MAX`] bytes).
    pub fn from_files(
        authorities: &Path,
        chain: &Path,
        key: &Path,
    ) -> Result<Credentials, IdentityError> {
        Credentials::from_pem(&read_pem(authorities)?, &read_pem(chain)?, &read_pem(key)?)
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, IdentityError> {
        let mut roots = RootCertStore::empty();
        for authority in &self.authorities {
            roots
                .add(authority.clone())
                .map_err(|e| IdentityError::Pem {
                    what: "the CA certificates",
                    reason: e.to_string(),
                })?;
        }
        Ok(Arc::new(roots))
    }
}

/// The name a node's certificate must carry: its node id (`n3`) as a DNS name.
pub fn server_name(node: NodeId) -> Result<ServerName<'static>, IdentityError> {
    ServerName::try_from(node.to_string()).map_err(|e| IdentityError::Config(e.to_string()))
}

/// The crypto provider every TLS configuration here is built with (ring; named, so that no
/// process-wide default has to be installed). rustls 0.23.48 deprecates ring's provider for
/// lacking post-quantum key exchange; the alternative (aws-lc-rs) needs cmake and a long C
/// build on every machine, and etcd's client already builds on ring.
#[allow(deprecated, reason = "ring: see above")]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A node's proven identity: the TLS configurations it answers and sends probes with.
#[derive(Clone)]
pub struct NodeIdentity {
    node: NodeId,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// The identity of `node`, from its credentials. Refused unless the certificate is valid
    /// now, chains to one of the trusted CAs, and names `node` (a process cannot start as a
    /// node its certificate does not name).
    pub fn new(node: NodeId, credentials: &Credentials) -> Result<NodeIdentity, IdentityError> {
        let roots = credentials.roots()?;
        let config = |e: rustls::Error| IdentityError::Config(e.to_string());
        let verifier = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| IdentityError::Config(e.to_string()))?;
        let (own, intermediates) =
            credentials
                .chain
                .split_first()
                .ok_or_else(|| IdentityError::Pem {
                    what: "the certificate",
                    reason: "no certificate".to_string(),
                })?;
        verifier
            .verify_server_cert(
                own,
                intermediates,
                &server_name(node)?,
                &[],
                UnixTime::now(),
            )
            .map_err(|e| IdentityError::NotThisNode {
                node,
                reason: e.to_string(),
            })?;
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| IdentityError::Config(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config)?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(credentials.chain.clone(), credentials.key.clone_key())
            .map_err(config)?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config)?
            .with_root_certificates(roots)
            .with_client_auth_cert(credentials.chain.clone(), credentials.key.clone_key())
            .map_err(config)?;
        let identity = NodeIdentity {
            node,
            server: Arc::new(server),
            client: Arc::new(client),
        };
        debug_assert_eq!(identity.node, node);
        Ok(identity)
    }

    /// The node it proves.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Accepts the handshakes of probing peers (who must present a certificate of the CA).
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }

    /// Opens handshakes with probed peers (who must present a certificate naming the peer).
    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.client.clone())
    }
}

/// A certificate and its private key, as PEM texts.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate.
    pub certificate_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// A certificate authority that issues node, store and operator certificates: the throwaway
/// CA of `membership certs` and the tests.
pub struct Authority {
    certificate_pem: String,
    key: rcgen::KeyPair,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

fn generate_error(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Generate(e.to_string())
}

/// Validity from an hour ago (clocks differ) to `days` from now.
fn validity(params: &mut rcgen::CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

impl Authority {
    /// A new CA, valid for [`AUTHORITY_VALID_DAYS`], named `name`.
    pub fn generate(name: &str) -> Result<Authority, IdentityError> {
        let key = rcgen::KeyPair::generate().map_err(generate_error)?;
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(generate_error)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, AUTHORITY_VALID_DAYS);
        let certificate = params.self_signed(&key).map_err(generate_error)?;
        Ok(Authority {
            certificate_pem: certificate.pem(),
            key,
        })
    }

    /// A CA from its certificate and key (PEM), as [`Authority::certificate_pem`] and
    /// [`Authority::key_pem`] wrote them.
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> Result<Authority, IdentityError> {
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| IdentityError::Pem {
            what: "the CA's private key",
            reason: e.to_string(),
        })?;
        // Checked here, so that issuing with it cannot fail on its certificate later.
        rcgen::Issuer::from_ca_cert_pem(certificate_pem, &key).map_err(|e| IdentityError::Pem {
            what: "the CA certificate",
            reason: e.to_string(),
        })?;
        Ok(Authority {
            certificate_pem: certificate_pem.to_string(),
            key,
        })
    }

    /// The CA's certificate (what every node and the store trust).
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The CA's private key (PKCS#8): keep it off the nodes.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate for `name` (a node id such as `n3`, a store member such as `etcd`, a
    /// client such as `operator`): its common name and first DNS name are `name`, and `hosts`
    /// (IP addresses or DNS names, for a server reached by address) are added to its names. It
    /// serves as a client and as a server certificate, for [`CERTIFICATE_VALID_DAYS`].
    pub fn issue(&self, name: &str, hosts: &[String]) -> Result<Issued, IdentityError> {
        let mut names = vec![name.to_string()];
        names.extend(hosts.iter().cloned());
        let mut params = rcgen::CertificateParams::new(names).map_err(generate_error)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity(&mut params, CERTIFICATE_VALID_DAYS);
        let key = rcgen::KeyPair::generate().map_err(generate_error)?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&self.certificate_pem, &self.key)
            .map_err(generate_error)?;
        let certificate = params.signed_by(&key, &issuer).map_err(generate_error)?;
        Ok(Issued {
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The credentials of `name` issued by this CA, trusting only this CA.
    pub fn credentials(&self, name: &str, hosts: &[String]) -> Result<Credentials, IdentityError> {
        let issued = self.issue(name, hosts)?;
        Credentials::from_pem(
            self.certificate_pem.as_bytes(),
            issued.certificate_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
    }
}

/// The files [`write_directory`] writes: `ca.pem` (and `ca.key`), then `NAME.pem` and
/// `NAME.key` for each name.
pub const AUTHORITY_CERTIFICATE_FILE: &str = "ca.pem";

/// The CA's private key file in a credentials directory.
pub const AUTHORITY_KEY_FILE: &str = "ca.key";

/// The most names one [`write_directory`] issues certificates for.
pub const ISSUE_NAMES_MAX: usize = 1_024;

/// Issues certificates for `names` into `directory` (created if missing): the CA is read from
/// `ca.pem` and `ca.key` there, or generated and written when neither exists; each name gets
/// `NAME.pem` and `NAME.key` (keys readable by the owner only). `hosts` are added to every
/// certificate issued in this call. Returns the files written.
pub fn write_directory(
    directory: &Path,
    names: &[String],
    hosts: &[String],
) -> Result<Vec<std::path::PathBuf>, IdentityError> {
    if names.len() > ISSUE_NAMES_MAX {
        return Err(IdentityError::Generate(format!(
            "{} names, more than {ISSUE_NAMES_MAX}",
            names.len()
        )));
    }
    if let Some(bad) = names
        .iter()
        .find(|n| n.is_empty() || n.contains(['/', '\\']) || n.starts_with('.') || *n == "ca")
    {
        return Err(IdentityError::Generate(format!(
            "{bad:?} is not a certificate name (a node id such as n3, or a word such as etcd)"
        )));
    }
    let io = |path: &Path, e: std::io::Error| IdentityError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(directory).map_err(|e| io(directory, e))?;
    let certificate_path = directory.join(AUTHORITY_CERTIFICATE_FILE);
    let key_path = directory.join(AUTHORITY_KEY_FILE);
    let mut written = Vec::new();
    let authority = match (certificate_path.exists(), key_path.exists()) {
        (true, true) => {
            let text = |path: &Path| {
                String::from_utf8(read_pem(path)?).map_err(|e| IdentityError::Pem {
                    what: "the CA",
                    reason: e.to_string(),
                })
            };
            Authority::from_pem(&text(&certificate_path)?, &text(&key_path)?)?
        }
        (false, false) => {
            let authority = Authority::generate("membership cluster CA")?;
            write_file(&certificate_path, authority.certificate_pem(), false)?;
            write_file(&key_path, &authority.key_pem(), true)?;
            written.push(certificate_path.clone());
            written.push(key_path.clone());
            authority
        }
        _ => {
            return Err(IdentityError::File {
                path: directory.display().to_string(),
                reason: format!(
                    "has one of {AUTHORITY_CERTIFICATE_FILE} and {AUTHORITY_KEY_FILE} without the other"
                ),
            })
        }
    };
    for name in names {
        let issued = authority.issue(name, hosts)?;
        let certificate = directory.join(format!("{name}.pem"));
        let key = directory.join(format!("{name}.key"));
        write_file(&certificate, &issued.certificate_pem, false)?;
        write_file(&key, &issued.key_pem, true)?;
        written.push(certificate);
        written.push(key);
    }
    debug_assert!(written.len() >= 2 * names.len());
    Ok(written)
}

/// Writes `text` to `path`; a key is readable by its owner only.
fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), IdentityError> {
    let io = |e: std::io::Error| IdentityError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(io)?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_proves_the_node_it_names_and_no_other() {
        let ca = Authority::generate("test CA").unwrap();
        let credentials = ca.credentials("n3", &[]).unwrap();
        let identity = NodeIdentity::new(NodeId(3), &credentials).unwrap();
        assert_eq!(identity.node(), NodeId(3));
        let refused = NodeIdentity::new(NodeId(4), &credentials).unwrap_err();
        assert!(
            matches!(
                refused,
                IdentityError::NotThisNode {
                    node: NodeId(4),
                    ..
                }
            ),
            "{refused}"
        );
    }

    #[test]
    fn a_certificate_of_another_ca_proves_nothing() {
        let ours = Authority::generate("ours").unwrap();
        let theirs = Authority::generate("theirs").unwrap();
        let issued = theirs.issue("n1", &[]).unwrap();
        let credentials = Credentials::from_pem(
            ours.certificate_pem().as_bytes(),
            issued.certificate_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
        .unwrap();
        let refused = NodeIdentity::new(NodeId(1), &credentials).unwrap_err();
        assert!(
            matches!(refused, IdentityError::NotThisNode { .. }),
            "{refused}"
        );
    }

    #[test]
    fn bad_pem_is_named() {
        let ca = Authority::generate("test CA").unwrap();
        let issued = ca.issue("n1", &[]).unwrap();
        let error = Credentials::from_pem(
            b"not a certificate",
            issued.certificate_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            IdentityError::Pem {
                what: "the CA certificates",
                reason: "no certificate".to_string()
            }
        );
        let error = Credentials::from_pem(
            ca.certificate_pem().as_bytes(),
            issued.certificate_pem.as_bytes(),
            b"",
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                IdentityError::Pem {
                    what: "the private key",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn a_directory_keeps_its_ca_across_calls() {
        let directory =
            std::env::temp_dir().join(format!("membership-certs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&directory);
        let first = write_directory(&directory, &["n1".to_string()], &[]).unwrap();
        assert_eq!(first.len(), 4, "the CA's two files and n1's two");
        let second = write_directory(&directory, &["n2".to_string()], &[]).unwrap();
        assert_eq!(second.len(), 2, "the CA is kept");
        let credentials = Credentials::from_files(
            &directory.join("ca.pem"),
            &directory.join("n2.pem"),
            &directory.join("n2.key"),
        )
        .unwrap();
        NodeIdentity::new(NodeId(2), &credentials).unwrap();
        let bad = write_directory(&directory, &["../x".to_string()], &[]).unwrap_err();
        assert!(matches!(bad, IdentityError::Generate(_)), "{bad}");
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
