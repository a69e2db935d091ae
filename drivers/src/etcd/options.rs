//! How to reach an etcd cluster: the store URL (endpoints, the registry's key prefix, TLS
//! files) and the client's TLS options.

use crate::store::StoreError;

/// The default timeout of one request, after which a commit's outcome is unknown.
pub const ETCD_REQUEST_TIMEOUT_MS: u64 = 400;

/// How to reach an etcd cluster and where the registry lives in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Client endpoints (`http://127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// The key prefix of every key of this registry (`/membership/`).
    pub prefix: String,
    /// One request's timeout, in ms.
    pub request_timeout_ms: u64,
    /// Whether every commit also writes its spec actions under `log/...` (the committed log for
    /// audits and the conformance suite; it grows with every commit).
    pub record_log: bool,
    /// TLS to the members, or `None` for plain HTTP.
    pub tls: Option<EtcdTls>,
}

/// TLS to etcd: the CA that signed the members' certificates, and this client's certificate
/// and key (etcd with `--client-cert-auth` takes its common name as the user name, whose roles
/// decide which keys it may read and write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA certificate (PEM) the members' certificates must chain to.
    pub ca: std::path::PathBuf,
    /// This client's certificate and private key (PEM), or `None` to present none.
    pub identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// The most query parameters a store URL carries (`ca`, `cert`, `key`).
const URL_PARAMETERS_MAX: usize = 3;

/// Reads one of the TLS files a store URL names.
fn read_tls_file(url: &str, what: &str, path: &std::path::Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| StoreError::Url {
        url: url.to_string(),
        reason: format!("the {what} file {}: {e}", path.display()),
    })
}

/// The TLS options of `tls` for the client, read from its files.
pub(super) fn tls_options(url: &str, tls: &EtcdTls) -> Result<etcd_client::TlsOptions, StoreError> {
    let ca = read_tls_file(url, "ca", &tls.ca)?;
    let mut options =
        etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(ca));
    if let Some((cert, key)) = &tls.identity {
        let cert = read_tls_file(url, "cert", cert)?;
        let key = read_tls_file(url, "key", key)?;
        options = options.identity(etcd_client::Identity::from_pem(cert, key));
    }
    Ok(options)
}

impl EtcdOptions {
    /// Parses a store URL: `etcd://host:port[,host:port...][/prefix][?ca=FILE&cert=FILE&key=FILE]`.
    /// The prefix defaults to `/membership/`. With `ca`, the members are reached over TLS and
    /// must present certificates of that CA; `cert` and `key` (both or neither) are this
    /// client's certificate and key.
    pub fn from_url(url: &str) -> Result<EtcdOptions, StoreError> {
        let bad = |why: &str| StoreError::Url {
            url: url.to_string(),
            reason: why.to_string(),
        };
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("an etcd store URL starts with etcd://"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, query),
            None => (rest, ""),
        };
        let mut parameters = std::collections::BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| bad(&format!("{pair:?} is not name=value")))?;
            if !matches!(name, "ca" | "cert" | "key") {
                return Err(bad(&format!(
                    "unknown parameter {name:?} (known: ca, cert, key)"
                )));
            }
            if value.is_empty() || parameters.insert(name, value).is_some() {
                return Err(bad(&format!("{name} given twice or empty")));
            }
        }
        debug_assert!(parameters.len() <= URL_PARAMETERS_MAX);
        let path = |name: &str| parameters.get(name).map(std::path::PathBuf::from);
        let tls = match (path("ca"), path("cert"), path("key")) {
            (None, None, None) => None,
            (Some(ca), None, None) => Some(EtcdTls { ca, identity: None }),
            (Some(ca), Some(cert), Some(key)) => Some(EtcdTls {
                ca,
                identity: Some((cert, key)),
            }),
            (None, _, _) => return Err(bad("cert and key need ca (the members' CA)")),
            _ => return Err(bad("cert and key go together")),
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (hosts, path) = match rest.split_once('/') {
            Some((hosts, path)) => (hosts, path),
            None => (rest, ""),
        };
        let endpoints: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("{scheme}://{h}"))
            .collect();
        if endpoints.is_empty() {
            return Err(bad("no endpoint (etcd://127.0.0.1:2379)"));
        }
        let prefix = if path.is_empty() {
            "/membership/".to_string()
        } else {
            format!("/{}/", path.trim_matches('/'))
        };
        Ok(EtcdOptions {
            endpoints,
            prefix,
            request_timeout_ms: ETCD_REQUEST_TIMEOUT_MS,
            record_log: false,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn reason(url: &str) -> String {
        match EtcdOptions::from_url(url) {
            Err(StoreError::Url { reason, .. }) => reason,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn tls_parameters_parse_or_name_what_is_wrong() {
        let o = EtcdOptions::from_url("etcd://h:1,g:2/m?ca=/c/ca.pem&cert=/c/n1.pem&key=/c/n1.key")
            .unwrap();
        assert_eq!(o.endpoints, vec!["https://h:1", "https://g:2"]);
        assert_eq!(o.prefix, "/m/");
        assert_eq!(
            o.tls,
            Some(EtcdTls {
                ca: PathBuf::from("/c/ca.pem"),
                identity: Some((PathBuf::from("/c/n1.pem"), PathBuf::from("/c/n1.key"))),
            })
        );
        let o = EtcdOptions::from_url("etcd://h:1?ca=ca.pem").unwrap();
        assert_eq!(
            (o.endpoints[0].as_str(), o.prefix.as_str()),
            ("https://h:1", "/membership/")
        );
        assert_eq!(o.tls.unwrap().identity, None);
        let o = EtcdOptions::from_url("etcd://h:1/m").unwrap();
        assert_eq!((o.endpoints[0].as_str(), o.tls), ("http://h:1", None));
        assert_eq!(
            reason("etcd://h:1?cert=a&key=b"),
            "cert and key need ca (the members' CA)"
        );
        assert_eq!(reason("etcd://h:1?ca=a&cert=b"), "cert and key go together");
        assert_eq!(
            reason("etcd://h:1?ca=a&user=root"),
            "unknown parameter \"user\" (known: ca, cert, key)"
        );
        assert_eq!(reason("etcd://h:1?ca=a&ca=b"), "ca given twice or empty");
        assert_eq!(reason("etcd://h:1?ca"), "\"ca\" is not name=value");
        assert_eq!(
            reason("http://h:1"),
            "an etcd store URL starts with etcd://"
        );
        assert_eq!(
            reason("etcd:///m?ca=a"),
            "no endpoint (etcd://127.0.0.1:2379)"
        );
    }

    #[test]
    fn a_missing_tls_file_is_named() {
        let tls = EtcdTls {
            ca: PathBuf::from("/nonexistent/ca.pem"),
            identity: None,
        };
        match tls_options("etcd://h:1", &tls) {
            Err(StoreError::Url { reason, .. }) => {
                assert!(
                    reason.starts_with("the ca file /nonexistent/ca.pem: "),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    proptest! {
        /// A URL written from its parts parses back to them.
        #[test]
        fn a_url_parses_back_to_its_parts(
            hosts in prop::collection::vec("[a-z]{1,8}:[1-9][0-9]{0,4}", 1..4),
            prefix in "[a-z]{1,8}(/[a-z]{1,8})?",
            files in prop::option::of(("[a-z/]{1,12}", prop::option::of(("[a-z/]{1,12}", "[a-z/]{1,12}")))),
        ) {
            let mut url = format!("etcd://{}/{prefix}", hosts.join(","));
            if let Some((ca, identity)) = &files {
                url.push_str(&format!("?ca={ca}"));
                if let Some((cert, key)) = identity {
                    url.push_str(&format!("&key={key}&cert={cert}"));
                }
            }
            let o = EtcdOptions::from_url(&url).unwrap();
            let scheme = if files.is_some() { "https" } else { "http" };
            let endpoints: Vec<String> = hosts.iter().map(|h| format!("{scheme}://{h}")).collect();
            prop_assert_eq!(o.endpoints, endpoints);
            prop_assert_eq!(o.prefix, format!("/{prefix}/"));
            let tls = files.map(|(ca, identity)| EtcdTls {
                ca: PathBuf::from(ca),
                identity: identity.map(|(c, k)| (PathBuf::from(c), PathBuf::from(k))),
            });
            prop_assert_eq!(o.tls, tls);
        }
    }
}
