//! `membership`: the operator's command line (issue 21, point 5).
//!
//! ```text
//! membership status --store etcd://127.0.0.1:2379[,...][/prefix] [--json]
//! ```
//!
//! `status` reads one snapshot of the registry (nodes, status, incarnation, primary and term,
//! configuration number, actors per node, queue length, heartbeat round and failure votes) and
//! prints it as a table, or as JSON with `--json` (`membership::status::Status`). The store URL
//! is an etcd URL (the binary must be built with `--features etcd`); `memory` is refused: the
//! in-memory store lives inside one process.
//!
//! Exit status: 0 on success, 1 when the store could not be read, 2 on bad arguments.

#![forbid(unsafe_code)]

use membership::status::Status;
use membership::{Snapshot, StoreError};
use std::process::ExitCode;

const USAGE: &str = "usage: membership status --store URL [--json]
  --store URL   etcd://host:port[,host:port...][/prefix] (the binary needs --features etcd)
  --json        print JSON instead of a table";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
struct Command {
    store: String,
    json: bool,
}

/// Parses the arguments (without the program name); the error names what was wrong.
fn parse(args: &[String]) -> Result<Command, String> {
    let mut args = args.iter();
    match args.next().map(String::as_str) {
        Some("status") => {}
        Some(other) => return Err(format!("unknown command {other:?}: only `status`")),
        None => return Err("no command given".to_string()),
    }
    let mut store = None;
    let mut json = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--store" => match args.next() {
                Some(url) => store = Some(url.clone()),
                None => return Err("--store needs a URL".to_string()),
            },
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let store = store.ok_or_else(|| "--store URL is required".to_string())?;
    Ok(Command { store, json })
}

/// Reads one snapshot from the store at `url`.
async fn snapshot(url: &str) -> Result<Snapshot, StoreError> {
    let refused = |reason: &str| StoreError::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if url == "memory" {
        return Err(refused(
            "the in-memory store lives inside one process: give the cluster's shared store",
        ));
    }
    if !url.starts_with("etcd://") {
        return Err(refused("not a store URL this binary reads (etcd://...)"));
    }
    #[cfg(feature = "etcd")]
    {
        use membership::Store;
        let store = membership::EtcdStore::connect_url(url).await?;
        store.snapshot().await
    }
    #[cfg(not(feature = "etcd"))]
    {
        Err(refused(
            "this binary was built without the `etcd` feature (cargo build -p membership --features etcd --bin membership)",
        ))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse(&args) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("membership: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match snapshot(&command.store).await {
        Ok(snapshot) => {
            let status = Status::of(&snapshot);
            if command.json {
                println!("{}", status.json());
            } else {
                print!("{}", status.table());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("membership: {error}");
            ExitCode::from(1)
        }
    }
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
            parse(&args(&["status", "--store", "etcd://h:1", "--json"])),
            Ok(Command {
                store: "etcd://h:1".to_string(),
                json: true
            })
        );
        assert_eq!(parse(&args(&[])), Err("no command given".to_string()));
        assert_eq!(
            parse(&args(&["watch"])),
            Err("unknown command \"watch\": only `status`".to_string())
        );
        assert_eq!(
            parse(&args(&["status"])),
            Err("--store URL is required".to_string())
        );
        assert_eq!(
            parse(&args(&["status", "--store"])),
            Err("--store needs a URL".to_string())
        );
        assert_eq!(
            parse(&args(&["status", "--store", "x", "--yaml"])),
            Err("unknown argument \"--yaml\"".to_string())
        );
    }

    #[tokio::test]
    async fn the_memory_store_and_other_urls_are_refused_by_name() {
        let err = snapshot("memory").await.unwrap_err().to_string();
        assert!(
            err.starts_with("store URL memory: the in-memory store lives inside one process"),
            "{err}"
        );
        let err = snapshot("http://x").await.unwrap_err().to_string();
        assert!(err.contains("not a store URL this binary reads"), "{err}");
    }
}
