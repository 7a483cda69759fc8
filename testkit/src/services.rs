//! The shared servers the store tests need, found or started:
//!
//! - [`postgres`]: the test PostgreSQL server's address (`GATEWAY_TEST_POSTGRES`,
//!   default `postgres://postgres@127.0.0.1:5432/test`) when it answers, and
//!   [`schema_name`] for a schema of a test's own on it;
//! - [`mariadb`]: the test MariaDB server's address (`GATEWAY_TEST_MARIADB`, default
//!   `mysql://root@127.0.0.1:3306/test`) when it answers;
//! - [`RedisServer`]: a `redis-server` of a test's own on a free port, which the test
//!   may stop and start again (a shared one could not be stopped without disturbing
//!   other tests);
//! - [`Cuttable`]: a TCP forwarder in front of a server that the test can cut and
//!   restore, to take a server away from the gateway without stopping it for everyone.
//!
//! Each says, through [`crate::skip`], why a test could not run, and fails it under
//! `.ci/run`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// The test PostgreSQL server's address.
pub fn postgres_url() -> String {
    std::env::var("GATEWAY_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The test PostgreSQL server's address when something listens there, else `None`
/// after saying so ([`crate::skip`]).
pub async fn postgres(test: &str) -> Option<String> {
    let url = postgres_url();
    let host_port = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    match TcpStream::connect(&host_port).await {
        Ok(_) => Some(url),
        Err(e) => {
            crate::skip(test, &format!("no PostgreSQL at {host_port} ({e})"), true);
            None
        }
    }
}

/// The test MariaDB (or MySQL) server's address.
pub fn mariadb_url() -> String {
    std::env::var("GATEWAY_TEST_MARIADB")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// The test MariaDB server's address when something listens there, else `None`
/// after saying so ([`crate::skip`]).
pub async fn mariadb(test: &str) -> Option<String> {
    let url = mariadb_url();
    let host_port = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:3306")
        .to_owned();
    match TcpStream::connect(&host_port).await {
        Ok(_) => Some(url),
        Err(e) => {
            crate::skip(test, &format!("no MariaDB at {host_port} ({e})"), true);
            None
        }
    }
}

/// A schema name no other test uses.
pub fn schema_name() -> String {
    let mut bytes = [0u8; 8];
    for b in &mut bytes {
        *b = rand_byte();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("t_{hex}")
}

fn rand_byte() -> u8 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    (hasher.finish() & 0xff) as u8
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `redis-server` of a test's own, on a free port, keeping nothing on disk. Killed
/// when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers; `None` (after saying so) when
    /// `redis-server` is not installed.
    pub async fn start(test: &str) -> Option<RedisServer> {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
        };
        match server.spawn().await {
            Ok(()) => Some(server),
            Err(why) => {
                crate::skip(test, &why, true);
                None
            }
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it (its data goes with it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await.expect("redis-server starts again");
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port,
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server cannot be started ({e})"))?;
        self.child = Some(child);
        for _ in 0..500 {
            if ping(self.port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err("redis-server did not answer within 10 s".to_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).await.is_ok() && &answer == b"+PONG\r\n"
}

/// A TCP forwarder from a local port to `target` that can be cut (every connection
/// closed, new ones refused at once) and restored.
#[derive(Debug, Clone)]
pub struct Cuttable {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Cuttable {
    /// Starts forwarding to `target` (host:port).
    pub async fn start(target: &str) -> Cuttable {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(generation);
        let target = target.to_owned();
        let (c, g) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut cut_now = g.subscribe();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = outbound.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut ri, &mut wo) => {}
                        _ = tokio::io::copy(&mut ro, &mut wi) => {}
                        _ = cut_now.changed() => {}
                    }
                });
            }
        });
        Cuttable {
            addr,
            cut,
            generation,
        }
    }

    /// Where to connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}
