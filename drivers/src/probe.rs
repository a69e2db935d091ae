//! Peer probes over TCP: a node answers `PING` with `PONG` on its probe address, and probes a
//! peer by connecting, writing `PING` and reading `PONG` within the probe timeout.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

const PING: &[u8; 4] = b"PING";
const PONG: &[u8; 4] = b"PONG";

/// The most probe connections a node answers at once; more wait in the accept queue.
pub const PROBE_CONNECTIONS_MAX: usize = 256;

/// Binds `address` and answers probes until the returned task is aborted. Returns the bound
/// address (useful with port 0) and the task. Aborting the task closes the listener and every
/// connection it is answering (they live in the task's own set of tasks).
pub async fn serve(address: SocketAddr) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(PROBE_CONNECTIONS_MAX));
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            connections.spawn(async move {
                let mut buf = [0u8; 4];
                if stream.read_exact(&mut buf).await.is_ok() && &buf == PING {
                    let _ = stream.write_all(PONG).await;
                }
                drop(permit);
            });
        }
    });
    Ok((bound, task))
}

/// Probes the node answering at `address`: true when it answered within `timeout`.
pub async fn probe(address: &str, timeout: Duration) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(address).await.ok()?;
        stream.write_all(PING).await.ok()?;
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.ok()?;
        (&buf == PONG).then_some(())
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_served_address_answers_and_a_closed_one_does_not() {
        let (address, task) = serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let timeout = Duration::from_millis(500);
        assert!(probe(&address.to_string(), timeout).await);
        task.abort();
        let _ = task.await;
        assert!(!probe(&address.to_string(), Duration::from_millis(200)).await);
    }
}
