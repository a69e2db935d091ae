//! TLS to a FoundationDB cluster, passed through to the client library.
//!
//! FoundationDB's client takes its TLS settings as network options, set on the network builder
//! before the network boots (the application boots it, see the store's documentation), or from
//! the environment variables the client library reads itself (`FDB_TLS_CERTIFICATE_FILE`,
//! `FDB_TLS_KEY_FILE`, `FDB_TLS_CA_FILE`, `FDB_TLS_VERIFY_PEERS`). A cluster file whose
//! coordinators end in `:tls` is reached over TLS. [`FdbTls::network_options`] gives the options
//! to set: nothing here reads or checks the files, the client library does when it boots.

use foundationdb::options::NetworkOption;
use std::path::PathBuf;

/// The TLS settings of the FoundationDB client: its certificate, key, the CA bundle, and the
/// peer verification rule (FoundationDB's syntax, e.g. `Check.Valid=1,S.CN=fdb-server`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdbTls {
    /// The client's certificate (PEM).
    pub certificate: PathBuf,
    /// The client's private key (PEM).
    pub key: PathBuf,
    /// The CA certificates the cluster's certificates must chain to (PEM).
    pub ca: PathBuf,
    /// The rule a peer's certificate must satisfy, or `None` for the library's default
    /// (`Check.Valid=1`: any certificate of the CA).
    pub verify_peers: Option<String>,
}

impl FdbTls {
    /// The network options to set before the network boots, in the order the library wants
    /// them (certificate, key, CA, then the verification rule).
    pub fn network_options(&self) -> Vec<NetworkOption> {
        let path = |p: &PathBuf| p.display().to_string();
        let mut options = vec![
            NetworkOption::TLSCertPath(path(&self.certificate)),
            NetworkOption::TLSKeyPath(path(&self.key)),
            NetworkOption::TLSCaPath(path(&self.ca)),
        ];
        if let Some(rule) = &self.verify_peers {
            options.push(NetworkOption::TLSVerifyPeers(rule.as_bytes().to_vec()));
        }
        debug_assert!((3..=4).contains(&options.len()));
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_becomes_its_network_option() {
        let tls = FdbTls {
            certificate: "/c/n1.pem".into(),
            key: "/c/n1.key".into(),
            ca: "/c/ca.pem".into(),
            verify_peers: Some("Check.Valid=1,S.CN=fdb".to_string()),
        };
        let options = tls.network_options();
        assert_eq!(options.len(), 4);
        assert!(matches!(&options[0], NetworkOption::TLSCertPath(p) if p == "/c/n1.pem"));
        assert!(matches!(&options[1], NetworkOption::TLSKeyPath(p) if p == "/c/n1.key"));
        assert!(matches!(&options[2], NetworkOption::TLSCaPath(p) if p == "/c/ca.pem"));
        assert!(
            matches!(&options[3], NetworkOption::TLSVerifyPeers(r) if r == b"Check.Valid=1,S.CN=fdb")
        );
        let default_rule = FdbTls {
            verify_peers: None,
            ..tls
        };
        assert_eq!(default_rule.network_options().len(), 3);
    }
}
