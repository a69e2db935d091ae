//! `membership certs`: a throwaway certificate authority and the certificates a loopback
//! cluster needs (issue 21, points 1 and 2), for trials and tests. Production clusters use the
//! operator's own PKI: a node's certificate must name its node id (`n3`) as a DNS name, and
//! etcd takes a client certificate's common name as its user name.
//!
//! ```text
//! membership certs --dir DIR [--host H]... NAME...
//! ```
//!
//! Writes `DIR/ca.pem` and `DIR/ca.key` (the CA, made on the first call and kept after), then
//! `DIR/NAME.pem` and `DIR/NAME.key` for each name, with the hosts (IP addresses or DNS names a
//! server is reached by, such as `127.0.0.1` for an etcd member) added to each.

use membership::identity::{write_directory, ISSUE_NAMES_MAX};
use std::path::PathBuf;

/// The most `--host` arguments.
const HOSTS_MAX: usize = 16;

/// What `certs` was asked for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Certs {
    directory: PathBuf,
    hosts: Vec<String>,
    names: Vec<String>,
}

/// Parses the arguments after `certs`; the error names what was wrong.
pub(crate) fn parse(args: &[String]) -> Result<Certs, String> {
    let mut directory = None;
    let mut hosts = Vec::new();
    let mut names = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => match args.next() {
                Some(d) => directory = Some(PathBuf::from(d)),
                None => return Err("--dir needs a directory".to_string()),
            },
            "--host" => match args.next() {
                Some(h) if hosts.len() < HOSTS_MAX => hosts.push(h.clone()),
                Some(_) => return Err(format!("more than {HOSTS_MAX} hosts")),
                None => return Err("--host needs an address or a DNS name".to_string()),
            },
            flag if flag.starts_with('-') => return Err(format!("unknown argument {flag:?}")),
            name if names.len() < ISSUE_NAMES_MAX => names.push(name.to_string()),
            _ => return Err(format!("more than {ISSUE_NAMES_MAX} names")),
        }
    }
    let directory = directory.ok_or_else(|| "--dir DIR is required".to_string())?;
    if names.is_empty() {
        return Err("no name to issue a certificate for (n1, etcd, operator, ...)".to_string());
    }
    Ok(Certs {
        directory,
        hosts,
        names,
    })
}

/// Issues the certificates; prints each file written.
pub(crate) fn run(certs: &Certs) -> Result<(), String> {
    let written =
        write_directory(&certs.directory, &certs.names, &certs.hosts).map_err(|e| e.to_string())?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_parse_or_name_what_is_wrong() {
        assert_eq!(
            parse(&args(&["--dir", "d", "--host", "127.0.0.1", "etcd", "n1"])),
            Ok(Certs {
                directory: PathBuf::from("d"),
                hosts: vec!["127.0.0.1".to_string()],
                names: vec!["etcd".to_string(), "n1".to_string()],
            })
        );
        assert_eq!(
            parse(&args(&["n1"])),
            Err("--dir DIR is required".to_string())
        );
        assert_eq!(
            parse(&args(&["--dir", "d"])),
            Err("no name to issue a certificate for (n1, etcd, operator, ...)".to_string())
        );
        assert_eq!(
            parse(&args(&["--dir", "d", "--json", "n1"])),
            Err("unknown argument \"--json\"".to_string())
        );
    }
}
