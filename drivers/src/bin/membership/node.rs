//! `membership node`: one node of a cluster in this process, as an operator runs it.
//!
//! Its settings come from a TOML file (`--config FILE`, optional), each overridden by an
//! environment variable (`MEMBERSHIP_<KEY>`, the key upper-cased: `MEMBERSHIP_NODE=3`), then
//! checked: an unknown key, a value of the wrong type, a bad address or an invalid timing is an
//! error naming the key (or the variable) before anything starts.
//!
//! ```toml
//! store = "etcd://127.0.0.1:2379,127.0.0.1:12379,127.0.0.1:22379/membership"
//! node = 3                              # this node's id, 1..=nodes
//! nodes = 5                             # the registry's node slots (to initialise an empty store)
//! probe_address = "127.0.0.1:7003"      # where peers probe this node (default: a free port)
//! metrics_address = "127.0.0.1:9003"    # /metrics, /livez, /readyz (default: none)
//! timing = "default"                    # or "fast"; each setting below overrides one
//! # heartbeat_interval_ms = 100
//! # failure_timeout_ms = 500
//! # lease_ms = 300
//! log_format = "json"                   # or "text" (the default)
//! log_level = "info"                    # a tracing filter: "info", "membership=debug", ...
//! leave_timeout_ms = 30000              # how long SIGTERM waits for the leave to complete
//! # The node's identity (all three or none): probes then run over mutually authenticated TLS,
//! # and the certificate must name this node (n3). See `membership certs`.
//! tls_ca = "certs/ca.pem"
//! tls_cert = "certs/n3.pem"
//! tls_key = "certs/n3.key"
//! ```
//!
//! TLS to etcd is part of the store URL (`etcd://...?ca=FILE&cert=FILE&key=FILE`); the same
//! certificate can serve both, its common name being the node's etcd user.
//!
//! It initialises the registry if the store holds none, joins, logs every notification of the
//! node, and on SIGTERM or SIGINT leaves the cluster gracefully (its actors handed off to the
//! other nodes; the node is Left in the registry) before it exits 0. It exits 1 when it cannot
//! start or join, when the node stops on its own (superseded by another process of the same id,
//! the store lost), or when the leave did not complete in time.

use membership::protocol::{Config, NodeId, Timing, TimingSettings};
use membership::{NodeHandle, NodeOptions, Store};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The keys a configuration may hold, each with its environment variable.
pub(crate) const KEYS: [(&str, &str); 15] = [
    ("store", "MEMBERSHIP_STORE"),
    ("node", "MEMBERSHIP_NODE"),
    ("nodes", "MEMBERSHIP_NODES"),
    ("probe_address", "MEMBERSHIP_PROBE_ADDRESS"),
    ("metrics_address", "MEMBERSHIP_METRICS_ADDRESS"),
    ("timing", "MEMBERSHIP_TIMING"),
    ("heartbeat_interval_ms", "MEMBERSHIP_HEARTBEAT_INTERVAL_MS"),
    ("failure_timeout_ms", "MEMBERSHIP_FAILURE_TIMEOUT_MS"),
    ("lease_ms", "MEMBERSHIP_LEASE_MS"),
    ("log_format", "MEMBERSHIP_LOG_FORMAT"),
    ("log_level", "MEMBERSHIP_LOG_LEVEL"),
    ("leave_timeout_ms", "MEMBERSHIP_LEAVE_TIMEOUT_MS"),
    ("tls_ca", "MEMBERSHIP_TLS_CA"),
    ("tls_cert", "MEMBERSHIP_TLS_CERT"),
    ("tls_key", "MEMBERSHIP_TLS_KEY"),
];

/// The keys whose values are numbers (an environment variable's text is parsed as one).
const NUMBER_KEYS: [&str; 6] = [
    "node",
    "nodes",
    "heartbeat_interval_ms",
    "failure_timeout_ms",
    "lease_ms",
    "leave_timeout_ms",
];

/// The default for `leave_timeout_ms`.
pub(crate) const LEAVE_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// How often the command checks that the node still runs while it waits for a signal.
const STOPPED_CHECK_MS: u64 = 200;

/// The configuration as written (every key optional until checked).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    store: Option<String>,
    node: Option<u16>,
    nodes: Option<u16>,
    probe_address: Option<String>,
    metrics_address: Option<String>,
    timing: Option<String>,
    heartbeat_interval_ms: Option<u64>,
    failure_timeout_ms: Option<u64>,
    lease_ms: Option<u64>,
    log_format: Option<String>,
    log_level: Option<String>,
    leave_timeout_ms: Option<u64>,
    tls_ca: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
}

/// The files of a node's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IdentityFiles {
    pub(crate) ca: std::path::PathBuf,
    pub(crate) cert: std::path::PathBuf,
    pub(crate) key: std::path::PathBuf,
}

/// How the node logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A checked configuration.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NodeConfig {
    pub(crate) store: String,
    pub(crate) node: NodeId,
    pub(crate) nodes: u16,
    pub(crate) probe_address: SocketAddr,
    pub(crate) metrics_address: Option<SocketAddr>,
    pub(crate) timing: Timing,
    pub(crate) log_format: LogFormat,
    pub(crate) log_level: String,
    pub(crate) leave_timeout_ms: u64,
    pub(crate) identity: Option<IdentityFiles>,
}

fn address(key: &str, text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|e| format!("{key} = {text:?}: not a socket address ({e})"))
}

/// The configuration from the file's text (`None`: no file) and the environment `env`: each
/// `MEMBERSHIP_<KEY>` variable overrides the file's key. Errors name the key or the variable.
pub(crate) fn resolve(
    file: Option<(&str, &str)>,
    env: &BTreeMap<String, String>,
) -> Result<NodeConfig, String> {
    let mut table: toml::Table = match file {
        Some((path, text)) => text
            .parse()
            .map_err(|e: toml::de::Error| format!("{path}: {}", e.message()))?,
        None => toml::Table::new(),
    };
    for (key, var) in KEYS {
        let Some(text) = env.get(var) else { continue };
        let value = if NUMBER_KEYS.contains(&key) {
            let number: i64 = text
                .trim()
                .parse()
                .map_err(|_| format!("{var}={text:?}: not a number"))?;
            toml::Value::Integer(number)
        } else {
            toml::Value::String(text.clone())
        };
        table.insert(key.to_string(), value);
    }
    let source = file.map_or("the configuration", |(path, _)| path);
    let written: Written = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| format!("{source}: {}", e.message()))?;
    check(written)
}

fn check(w: Written) -> Result<NodeConfig, String> {
    let store = w
        .store
        .ok_or("store is required (a store URL: etcd://host:port[,...][/prefix])")?;
    let nodes = w.nodes.unwrap_or(5);
    let node = w
        .node
        .ok_or("node is required (this node's id, 1..=nodes)")?;
    if node == 0 || node > nodes {
        return Err(format!(
            "node = {node}: not a node of a {nodes}-node cluster"
        ));
    }
    Config::fixed(nodes).map_err(|e| format!("nodes = {nodes}: {e}"))?;
    let probe_address = address(
        "probe_address",
        w.probe_address.as_deref().unwrap_or("127.0.0.1:0"),
    )?;
    let metrics_address = w
        .metrics_address
        .as_deref()
        .map(|a| address("metrics_address", a))
        .transpose()?;
    let preset = w.timing.as_deref().unwrap_or("default");
    let mut settings: TimingSettings = Timing::preset(preset)
        .ok_or_else(|| format!("timing = {preset:?}: \"default\" or \"fast\""))?;
    if let Some(v) = w.heartbeat_interval_ms {
        settings.heartbeat_interval_ms = v;
    }
    if let Some(v) = w.failure_timeout_ms {
        settings.failure_timeout_ms = v;
    }
    if let Some(v) = w.lease_ms {
        settings.lease_ms = v;
    }
    let timing = Timing::new(settings).map_err(|e| format!("timing: {e}"))?;
    let log_format = match w.log_format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => return Err(format!("log_format = {other:?}: \"text\" or \"json\"")),
    };
    let log_level = w.log_level.unwrap_or_else(|| "info".to_string());
    tracing_subscriber::EnvFilter::try_new(&log_level)
        .map_err(|e| format!("log_level = {log_level:?}: {e}"))?;
    let leave_timeout_ms = w.leave_timeout_ms.unwrap_or(LEAVE_TIMEOUT_MS_DEFAULT);
    if leave_timeout_ms == 0 {
        return Err("leave_timeout_ms = 0: at least 1".to_string());
    }
    let identity = match (w.tls_ca, w.tls_cert, w.tls_key) {
        (None, None, None) => None,
        (Some(ca), Some(cert), Some(key)) => Some(IdentityFiles {
            ca: ca.into(),
            cert: cert.into(),
            key: key.into(),
        }),
        _ => {
            return Err("tls_ca, tls_cert and tls_key go together (all three or none)".to_string())
        }
    };
    Ok(NodeConfig {
        store,
        node: NodeId(node),
        nodes,
        probe_address,
        metrics_address,
        timing,
        log_format,
        log_level,
        leave_timeout_ms,
        identity,
    })
}

/// Installs the process's log output (stdout) as configured.
fn init_logs(config: &NodeConfig) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .map_err(|e| format!("log_level: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let installed = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    installed.map_err(|e| format!("logs: {e}"))
}

/// Runs the node until a signal asks it to leave (see the module documentation).
pub(crate) async fn run(config: NodeConfig) -> Result<(), String> {
    init_logs(&config)?;
    #[cfg(feature = "etcd")]
    if config.store.starts_with("etcd://") {
        let store = membership::EtcdStore::connect_url(&config.store)
            .await
            .map_err(|e| e.to_string())?;
        return run_on(config, Arc::new(store)).await;
    }
    let _ = run_on::<membership::MemoryStore>;
    Err(format!(
        "store = {:?}: a node process needs a shared store, etcd://host:port[,...][/prefix] (in a binary built with --features etcd)",
        config.store
    ))
}

async fn run_on<S: Store>(config: NodeConfig, store: Arc<S>) -> Result<(), String> {
    let registry = Config::fixed(config.nodes).map_err(|e| e.to_string())?;
    store.init(registry).await.map_err(|e| e.to_string())?;
    let mut options = NodeOptions::new(config.node);
    options.probe_address = config.probe_address;
    options.metrics_address = config.metrics_address;
    options.timing = config.timing;
    if let Some(files) = &config.identity {
        let credentials =
            membership::identity::Credentials::from_files(&files.ca, &files.cert, &files.key)
                .map_err(|e| format!("identity: {e}"))?;
        let identity = membership::identity::NodeIdentity::new(config.node, &credentials)
            .map_err(|e| format!("identity: {e}"))?;
        options.identity = Some(identity);
    }
    let node = NodeHandle::start(store, options)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        node = %config.node,
        incarnation = node.incarnation(),
        probe = %node.probe_address(),
        authenticated_probes = config.identity.is_some(),
        metrics = %node.metrics_address().map_or_else(|| "none".to_string(), |a| a.to_string()),
        pid = std::process::id(),
        "started"
    );
    let mut notifications = node.notifications();
    tokio::spawn(async move {
        loop {
            match notifications.recv().await {
                Ok(n) => {
                    let text = serde_json::to_string(&n.notification).unwrap_or_default();
                    tracing::info!(notification = %text, "notification");
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "notifications missed");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    node.join().await.map_err(|e| format!("join: {e}"))?;
    tracing::info!("joined: Active");
    let signal = wait_for_signal(&node).await?;
    tracing::info!(signal, "leaving: handing the actors off");
    let leave = tokio::time::timeout(Duration::from_millis(config.leave_timeout_ms), node.leave());
    match leave.await {
        Ok(Ok(())) => {
            tracing::info!("left");
            node.kill();
            Ok(())
        }
        Ok(Err(e)) => Err(format!("leave: {e}")),
        Err(_) => Err(format!(
            "leave: not complete after {} ms (leave_timeout_ms)",
            config.leave_timeout_ms
        )),
    }
}

/// Waits for SIGTERM or SIGINT (their names), or fails when the node stops on its own.
async fn wait_for_signal(node: &NodeHandle) -> Result<&'static str, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut check = tokio::time::interval(Duration::from_millis(STOPPED_CHECK_MS));
    loop {
        tokio::select! {
            _ = term.recv() => return Ok("SIGTERM"),
            _ = int.recv() => return Ok("SIGINT"),
            _ = check.tick() => {
                if node.is_stopped() {
                    let why = node.stop_reason().unwrap_or_else(|| "stopped".to_string());
                    return Err(format!("the node stopped: {why}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const FILE: &str = r#"
store = "etcd://127.0.0.1:2379/m"
node = 3
nodes = 5
probe_address = "127.0.0.1:7003"
metrics_address = "127.0.0.1:9003"
timing = "fast"
lease_ms = 80
log_format = "json"
"#;

    #[test]
    fn a_file_is_read_and_the_environment_overrides_it() {
        let c = resolve(Some(("n3.toml", FILE)), &env(&[])).unwrap();
        assert_eq!(c.node, NodeId(3));
        assert_eq!(c.nodes, 5);
        assert_eq!(c.probe_address, "127.0.0.1:7003".parse().unwrap());
        assert_eq!(c.metrics_address, Some("127.0.0.1:9003".parse().unwrap()));
        assert_eq!(c.timing.settings().lease_ms, 80);
        assert_eq!(
            c.timing.settings().heartbeat_interval_ms,
            Timing::FAST_SETTINGS.heartbeat_interval_ms
        );
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.leave_timeout_ms, LEAVE_TIMEOUT_MS_DEFAULT);
        let c = resolve(
            Some(("n3.toml", FILE)),
            &env(&[
                ("MEMBERSHIP_NODE", "4"),
                ("MEMBERSHIP_STORE", "etcd://h:1/x"),
                ("MEMBERSHIP_LOG_FORMAT", "text"),
            ]),
        )
        .unwrap();
        assert_eq!((c.node, c.store.as_str()), (NodeId(4), "etcd://h:1/x"));
        assert_eq!(c.log_format, LogFormat::Text);
        // No file: the environment alone, defaults for the rest.
        let c = resolve(
            None,
            &env(&[("MEMBERSHIP_STORE", "etcd://h:1"), ("MEMBERSHIP_NODE", "1")]),
        )
        .unwrap();
        assert_eq!(c.nodes, 5);
        assert_eq!(c.metrics_address, None);
        assert_eq!(c.timing, Timing::default_timing());
        assert_eq!(c.identity, None);
        let c = resolve(
            None,
            &env(&[
                ("MEMBERSHIP_STORE", "etcd://h:1"),
                ("MEMBERSHIP_NODE", "1"),
                ("MEMBERSHIP_TLS_CA", "c/ca.pem"),
                ("MEMBERSHIP_TLS_CERT", "c/n1.pem"),
                ("MEMBERSHIP_TLS_KEY", "c/n1.key"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.identity,
            Some(IdentityFiles {
                ca: "c/ca.pem".into(),
                cert: "c/n1.pem".into(),
                key: "c/n1.key".into(),
            })
        );
    }

    #[test]
    fn bad_settings_are_refused_naming_the_key_or_the_variable() {
        let err = |file: &str, vars: &[(&str, &str)]| {
            resolve(Some(("n.toml", file)), &env(vars)).unwrap_err()
        };
        let e = err("store = \"etcd://h:1\"\nnode = 1\nnodez = 5\n", &[]);
        assert!(e.starts_with("n.toml: unknown field `nodez`"), "{e}");
        let e = err("store = \"etcd://h:1\"\nnode = \"one\"\n", &[]);
        assert!(e.starts_with("n.toml: invalid type"), "{e}");
        let e = err("store = \"etcd://h:1\"\n", &[("MEMBERSHIP_NODE", "x")]);
        assert_eq!(e, "MEMBERSHIP_NODE=\"x\": not a number");
        let e = err("store = \"etcd://h:1\"\nnode = 6\n", &[]);
        assert_eq!(e, "node = 6: not a node of a 5-node cluster");
        let e = err("node = 1\n", &[]);
        assert!(e.starts_with("store is required"), "{e}");
        let e = err("store = \"s\"\nnode = 1\nprobe_address = \"here\"\n", &[]);
        assert!(
            e.starts_with("probe_address = \"here\": not a socket address"),
            "{e}"
        );
        let e = err("store = \"s\"\nnode = 1\ntiming = \"slow\"\n", &[]);
        assert_eq!(e, "timing = \"slow\": \"default\" or \"fast\"");
        let e = err("store = \"s\"\nnode = 1\nlease_ms = 50\n", &[]);
        assert!(e.starts_with("timing: "), "{e}");
        let e = err("store = \"s\"\nnode = 1\nlog_format = \"xml\"\n", &[]);
        assert_eq!(e, "log_format = \"xml\": \"text\" or \"json\"");
        let e = err("store = \"s\"\nnode = [1\n", &[]);
        assert!(e.starts_with("n.toml: "), "{e}");
        let e = err("store = \"s\"\nnode = 1\nleave_timeout_ms = 0\n", &[]);
        assert_eq!(e, "leave_timeout_ms = 0: at least 1");
        let e = err("store = \"s\"\nnode = 1\ntls_cert = \"n1.pem\"\n", &[]);
        assert_eq!(
            e,
            "tls_ca, tls_cert and tls_key go together (all three or none)"
        );
    }

    #[test]
    fn every_key_has_its_variable() {
        for (key, var) in KEYS {
            assert_eq!(var, format!("MEMBERSHIP_{}", key.to_uppercase()));
        }
        assert!(NUMBER_KEYS
            .iter()
            .all(|k| KEYS.iter().any(|(key, _)| key == k)));
    }
}
