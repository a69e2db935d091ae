//! `membership`: the operator's command line (issue 21, point 5).
//!
//! ```text
//! membership status --store etcd://127.0.0.1:2379[,...][/prefix] [--json]
//! membership actors --store etcd://127.0.0.1:2379[,...][/prefix] --node n3 [--json]
//! membership watch --store etcd://127.0.0.1:2379[,...][/prefix] [--json] [--rounds]
//! membership migrate --store etcd://127.0.0.1:2379[,...][/prefix] [--dry-run]
//! membership node [--config FILE]
//! membership certs --dir DIR [--host H]... NAME...
//! ```
//!
//! `status` reads one snapshot of the registry (nodes, status, incarnation, primary and term,
//! configuration number, actors per node, queue length, heartbeat round and failure votes) and
//! prints it as a table, or as JSON with `--json` (`membership::status::Status`). The store URL
//! is an etcd URL (the binary must be built with `--features etcd`), or, for `status`, `actors`
//! and `watch`, `file:PATH`: a snapshot file that an embedded cluster on the in-memory store
//! writes (`membership::snapshot_file`); `memory` is refused: the in-memory store lives inside
//! one process.
//!
//! `actors --node n3` prints the actors placed on one node (id, epoch, and why it is queued to
//! move, if it is), as a table or JSON (`membership::status::NodeActors`).
//!
//! `watch` prints the registry's committed changes as they happen, one line per fact naming the
//! spec actions that explain it (`membership::watch::changes`), until SIGTERM or SIGINT.
//!
//! `migrate` rewrites a registry stored by an earlier layout of format version 1 (heartbeat
//! flags, log records without their round, the queue's chunks by actor id) to this build's
//! (`membership::upgrade::migrate_v1`), with every node stopped; `--dry-run` only prints what it
//! would write. Running it on a registry of this layout writes nothing.
//!
//! `node` runs one node of the cluster in this process until SIGTERM or SIGINT, then leaves
//! gracefully (`node.rs`: its TOML configuration, the `MEMBERSHIP_*` environment overrides, its
//! logs as text or JSON lines).
//!
//! `certs` issues certificates from a throwaway CA (`certs.rs`): node identities for
//! authenticated probes, and the etcd members' and clients' certificates for TLS to the store.
//!
//! Exit status: 0 on success, 1 when the store could not be read (or the node could not start,
//! join or leave), 2 on bad arguments or a bad configuration.

#![forbid(unsafe_code)]

mod certs;
mod node;

use membership::status::{NodeActors, Status};
use membership::{Snapshot, StoreError};
use std::process::ExitCode;

const USAGE: &str = "usage: membership status --store URL [--json]
       membership actors --store URL --node N [--json]
       membership watch --store URL [--json] [--rounds]
       membership migrate --store URL [--dry-run]
       membership node [--config FILE]   (settings: FILE, then MEMBERSHIP_* variables)
       membership certs --dir DIR [--host H]... NAME...   (a throwaway CA's certificates)
  --store URL   etcd://host:port[,host:port...][/prefix][?ca=FILE&cert=FILE&key=FILE],
                or file:PATH (status, actors, watch: a snapshot file of an embedded cluster)
                (the binary needs --features etcd; ca: TLS to the members, cert and key: this
                client's certificate, whose common name is its etcd user)
  --node N      actors: the node (n3 or 3)
  --json        status, actors, watch: print JSON instead of text
  --rounds      watch: also print every heartbeat round that opens
  --dry-run     migrate: print what would be written, write nothing";

/// Which command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    /// Print the registry.
    Status,
    /// Print one node's actors.
    Actors,
    /// Print the committed changes as they happen.
    Watch,
    /// Migrate the stored layout.
    Migrate,
    /// Run one node.
    Node,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
struct Command {
    verb: Verb,
    store: String,
    json: bool,
    dry_run: bool,
    /// `node`: the configuration file.
    config: Option<String>,
    /// `actors`: the node.
    node: Option<u16>,
    /// `watch`: print the heartbeat rounds too.
    rounds: bool,
}

/// Parses the arguments (without the program name); the error names what was wrong.
fn parse(args: &[String]) -> Result<Command, String> {
    let mut args = args.iter();
    let verb = match args.next().map(String::as_str) {
        Some("status") => Verb::Status,
        Some("actors") => Verb::Actors,
        Some("watch") => Verb::Watch,
        Some("migrate") => Verb::Migrate,
        Some("node") => Verb::Node,
        Some(other) => {
            return Err(format!(
            "unknown command {other:?}: `status`, `actors`, `watch`, `migrate`, `node` or `certs`"
        ))
        }
        None => return Err("no command given".to_string()),
    };
    let mut store = None;
    let mut json = false;
    let mut dry_run = false;
    let mut config = None;
    let mut node = None;
    let mut rounds = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" if verb == Verb::Watch => rounds = true,
            "--node" if verb == Verb::Actors => match args.next() {
                Some(text) => {
                    let id = text.strip_prefix('n').unwrap_or(text);
                    match id.parse::<u16>() {
                        Ok(id) if id > 0 => node = Some(id),
                        _ => return Err(format!("--node {text:?}: a node id (n3 or 3)")),
                    }
                }
                None => return Err("--node needs a node id".to_string()),
            },
            "--config" if verb == Verb::Node => match args.next() {
                Some(path) => config = Some(path.clone()),
                None => return Err("--config needs a file".to_string()),
            },
            "--json" if matches!(verb, Verb::Status | Verb::Actors | Verb::Watch) => json = true,
            "--dry-run" if verb == Verb::Migrate => dry_run = true,
            "--store" if verb != Verb::Node => match args.next() {
                Some(url) => store = Some(url.clone()),
                None => return Err("--store needs a URL".to_string()),
            },
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let store = match verb {
        // A node's store is in its configuration.
        Verb::Node => String::new(),
        _ => store.ok_or_else(|| "--store URL is required".to_string())?,
    };
    if verb == Verb::Actors && node.is_none() {
        return Err("--node N is required".to_string());
    }
    Ok(Command {
        verb,
        store,
        json,
        dry_run,
        config,
        node,
        rounds,
    })
}

/// The store URL refused with `reason`.
fn refused(url: &str, reason: &str) -> StoreError {
    StoreError::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

/// Checks that `url` names a shared store this binary reads.
fn shared_store(url: &str) -> Result<(), StoreError> {
    if url == "memory" {
        return Err(refused(
            url,
            "the in-memory store lives inside one process: give the cluster's shared store",
        ));
    }
    if !url.starts_with("etcd://") {
        return Err(refused(
            url,
            "not a store URL this binary reads (etcd://..., or file:PATH for status, actors and watch)",
        ));
    }
    if cfg!(feature = "etcd") {
        Ok(())
    } else {
        Err(refused(
            url,
            "this binary was built without the `etcd` feature (cargo build -p membership --features etcd --bin membership)",
        ))
    }
}

/// Migrates the registry at `url` (or, with `dry_run`, reports what it would write).
async fn migrate(url: &str, dry_run: bool) -> Result<membership::upgrade::Migrated, StoreError> {
    shared_store(url)?;
    #[cfg(feature = "etcd")]
    {
        let store = membership::EtcdStore::connect_url(url).await?;
        store.migrate_v1(!dry_run).await
    }
    #[cfg(not(feature = "etcd"))]
    {
        // Refused by `shared_store` above.
        let _ = dry_run;
        Err(refused(url, "no etcd feature"))
    }
}

/// The line `migrate` prints.
fn migrated_line(m: &membership::upgrade::Migrated, dry_run: bool) -> String {
    if m.puts == 0 && m.deletes == 0 {
        return "the registry is in this build's layout: nothing to migrate".to_string();
    }
    let what = format!(
        "{} keys written, {} removed, in {} transactions",
        m.puts, m.deletes, m.transactions
    );
    if dry_run {
        format!("dry run: would migrate ({what}); nothing written")
    } else {
        format!("migrated: {what}")
    }
}

/// How often `watch` looks at a snapshot file for a newer one, in ms.
const WATCH_FILE_POLL_MS: u64 = 100;

/// Prints one line of `watch`: the revision and the change, or a JSON object of both.
fn print_change(json: bool, revision: u64, line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"revision": revision, "change": line})
        )
    } else {
        writeln!(out, "{revision:>10}  {line}")
    };
    let _ = out.flush();
}

/// `watch` on a snapshot file: prints what changed each time the file is replaced (looked at
/// every [`WATCH_FILE_POLL_MS`]), until SIGTERM or SIGINT.
async fn watch_file(path: &std::path::Path, json: bool, rounds: bool) -> Result<(), StoreError> {
    use tokio::signal::unix::{signal, SignalKind};
    let unavailable = |e: std::io::Error| StoreError::Unavailable(e.to_string());
    let modified = || std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut seen = modified();
    let mut last = membership::snapshot_file::read(path)?;
    let mut term = signal(SignalKind::terminate()).map_err(unavailable)?;
    let mut int = signal(SignalKind::interrupt()).map_err(unavailable)?;
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(WATCH_FILE_POLL_MS));
    print_change(json, last.revision, "watching (SIGINT or SIGTERM stops)");
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        }
        let now = modified();
        if now == seen {
            continue;
        }
        seen = now;
        let next = membership::snapshot_file::read(path)?;
        for line in membership::watch::changes(&last, &next, rounds) {
            print_change(json, next.revision, &line);
        }
        last = next;
    }
}

/// Prints the registry's committed changes at `url` as they happen, until SIGTERM or SIGINT.
async fn watch(url: &str, json: bool, rounds: bool) -> Result<(), StoreError> {
    if let Some(path) = url.strip_prefix("file:") {
        return watch_file(std::path::Path::new(path), json, rounds).await;
    }
    shared_store(url)?;
    #[cfg(feature = "etcd")]
    {
        use membership::Store;
        use tokio::signal::unix::{signal, SignalKind};
        let store = membership::EtcdStore::connect_url(url).await?;
        let mut changed = store.watch();
        let mut last = store.snapshot().await?;
        let unavailable = |e: std::io::Error| StoreError::Unavailable(e.to_string());
        let mut term = signal(SignalKind::terminate()).map_err(unavailable)?;
        let mut int = signal(SignalKind::interrupt()).map_err(unavailable)?;
        let print = |revision: u64, line: &str| print_change(json, revision, line);
        print(last.revision, "watching (SIGINT or SIGTERM stops)");
        loop {
            tokio::select! {
                woke = changed.changed() => {
                    if woke.is_err() {
                        return Err(StoreError::Unavailable("the store's change feed ended".into()));
                    }
                }
                _ = term.recv() => return Ok(()),
                _ = int.recv() => return Ok(()),
            }
            changed.borrow_and_update();
            let next = store.snapshot().await?;
            for line in membership::watch::changes(&last, &next, rounds) {
                print(next.revision, &line);
            }
            last = next;
        }
    }
    #[cfg(not(feature = "etcd"))]
    {
        // Refused by `shared_store` above.
        let _ = (json, rounds);
        Err(refused(url, "no etcd feature"))
    }
}

/// Reads one snapshot from the store at `url` (or the snapshot file of `file:PATH`).
async fn snapshot(url: &str) -> Result<Snapshot, StoreError> {
    if let Some(path) = url.strip_prefix("file:") {
        return membership::snapshot_file::read(std::path::Path::new(path));
    }
    shared_store(url)?;
    #[cfg(feature = "etcd")]
    {
        use membership::Store;
        let store = membership::EtcdStore::connect_url(url).await?;
        store.snapshot().await
    }
    #[cfg(not(feature = "etcd"))]
    {
        Err(refused(url, "no etcd feature"))
    }
}

/// `membership node`: the configuration from the file and the environment, then the node.
async fn run_node(config: Option<&str>) -> ExitCode {
    let text = match config.map(|path| (path, std::fs::read_to_string(path))) {
        None => None,
        Some((path, Ok(text))) => Some((path, text)),
        Some((path, Err(e))) => {
            eprintln!("membership: {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let env: std::collections::BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("MEMBERSHIP_"))
        .collect();
    let resolved = node::resolve(text.as_ref().map(|(p, t)| (*p, t.as_str())), &env);
    let config = match resolved {
        Ok(config) => config,
        Err(error) => {
            eprintln!("membership: {error}");
            return ExitCode::from(2);
        }
    };
    match node::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "the node ends");
            eprintln!("membership: {error}");
            ExitCode::from(1)
        }
    }
}

#[tokio::main(worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("certs") {
        let done = certs::parse(&args[1..]).map(|c| certs::run(&c));
        return match done {
            Err(error) => {
                eprintln!("membership certs: {error}\n{USAGE}");
                ExitCode::from(2)
            }
            Ok(Err(error)) => {
                eprintln!("membership certs: {error}");
                ExitCode::from(1)
            }
            Ok(Ok(())) => ExitCode::SUCCESS,
        };
    }
    let command = match parse(&args) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("membership: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if command.verb == Verb::Node {
        return run_node(command.config.as_deref()).await;
    }
    if command.verb == Verb::Migrate {
        return match migrate(&command.store, command.dry_run).await {
            Ok(migrated) => {
                println!("{}", migrated_line(&migrated, command.dry_run));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("membership: {error}");
                ExitCode::from(1)
            }
        };
    }
    if command.verb == Verb::Watch {
        return match watch(&command.store, command.json, command.rounds).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("membership: {error}");
                ExitCode::from(1)
            }
        };
    }
    if let (Verb::Actors, Some(node)) = (command.verb, command.node) {
        let listed = snapshot(&command.store)
            .await
            .map_err(|e| e.to_string())
            .and_then(|s| NodeActors::of(&s, membership::protocol::NodeId(node)));
        return match listed {
            Ok(actors) if command.json => {
                println!("{}", actors.json());
                ExitCode::SUCCESS
            }
            Ok(actors) => {
                print!("{}", actors.table());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("membership: {error}");
                ExitCode::from(1)
            }
        };
    }
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
                verb: Verb::Status,
                store: "etcd://h:1".to_string(),
                json: true,
                dry_run: false,
                config: None,
                node: None,
                rounds: false,
            })
        );
        assert_eq!(
            parse(&args(&["migrate", "--dry-run", "--store", "etcd://h:1"])),
            Ok(Command {
                verb: Verb::Migrate,
                store: "etcd://h:1".to_string(),
                json: false,
                dry_run: true,
                config: None,
                node: None,
                rounds: false,
            })
        );
        assert_eq!(
            parse(&args(&["node", "--config", "n3.toml"])),
            Ok(Command {
                verb: Verb::Node,
                store: String::new(),
                json: false,
                dry_run: false,
                config: Some("n3.toml".to_string()),
                node: None,
                rounds: false,
            })
        );
        assert_eq!(
            parse(&args(&[
                "actors",
                "--store",
                "etcd://h:1",
                "--node",
                "n3",
                "--json"
            ])),
            Ok(Command {
                verb: Verb::Actors,
                store: "etcd://h:1".to_string(),
                json: true,
                dry_run: false,
                config: None,
                node: Some(3),
                rounds: false,
            })
        );
        assert_eq!(
            parse(&args(&["watch", "--store", "etcd://h:1", "--rounds"])),
            Ok(Command {
                verb: Verb::Watch,
                store: "etcd://h:1".to_string(),
                json: false,
                dry_run: false,
                config: None,
                node: None,
                rounds: true,
            })
        );
        assert_eq!(
            parse(&args(&["actors", "--store", "etcd://h:1"])),
            Err("--node N is required".to_string())
        );
        assert_eq!(
            parse(&args(&["actors", "--store", "etcd://h:1", "--node", "x3"])),
            Err("--node \"x3\": a node id (n3 or 3)".to_string())
        );
        assert_eq!(
            parse(&args(&["node", "--store", "etcd://h:1"])),
            Err("unknown argument \"--store\"".to_string())
        );
        assert_eq!(
            parse(&args(&["migrate", "--store", "etcd://h:1", "--json"])),
            Err("unknown argument \"--json\"".to_string())
        );
        assert_eq!(parse(&args(&[])), Err("no command given".to_string()));
        assert_eq!(
            parse(&args(&["wait"])),
            Err(
                "unknown command \"wait\": `status`, `actors`, `watch`, `migrate`, `node` or `certs`"
                    .to_string()
            )
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

    #[test]
    fn the_migration_line_says_what_was_written() {
        let m = membership::upgrade::Migrated {
            puts: 4,
            deletes: 1,
            transactions: 1,
            applied: true,
        };
        assert_eq!(
            migrated_line(&m, false),
            "migrated: 4 keys written, 1 removed, in 1 transactions"
        );
        assert_eq!(
            migrated_line(&m, true),
            "dry run: would migrate (4 keys written, 1 removed, in 1 transactions); nothing written"
        );
        let nothing = membership::upgrade::Migrated {
            puts: 0,
            deletes: 0,
            transactions: 0,
            applied: false,
        };
        assert_eq!(
            migrated_line(&nothing, false),
            "the registry is in this build's layout: nothing to migrate"
        );
    }

    #[tokio::test]
    async fn migrate_refuses_the_memory_store_by_name() {
        let err = migrate("memory", true).await.unwrap_err().to_string();
        assert!(
            err.contains("the in-memory store lives inside one process"),
            "{err}"
        );
    }
}
