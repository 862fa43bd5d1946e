//! A TCP proxy on loopback between refundd and PostgreSQL, as a virtual IP or
//! HAProxy stands in production, that a test can take down: every connection
//! through it cut at once (a transaction mid-statement or mid-COMMIT loses its
//! client, which never learns whether the COMMIT took) and new ones refused
//! until it is brought back. To refundd this is the database going away and
//! coming back, without stopping the cluster other tests share.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct DbProxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped at each cut: every connection watching it closes.
    cuts: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl DbProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> DbProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let task = tokio::spawn(forward(listener, upstream, up.clone(), cuts.clone()));
        DbProxy {
            addr,
            up,
            cuts,
            task,
        }
    }

    /// `url` (a database of the cluster) through the proxy.
    pub fn url_through(&self, url: &str) -> String {
        let mut through = url::Url::parse(url).unwrap();
        through.set_port(Some(self.addr.port())).unwrap();
        through.to_string()
    }

    /// Where `url` (127.0.0.1, a port) reaches PostgreSQL.
    pub fn upstream_of(url: &str) -> SocketAddr {
        let url = url::Url::parse(url).unwrap();
        format!("127.0.0.1:{}", url.port().unwrap())
            .parse()
            .unwrap()
    }

    /// The database goes away: every connection through the proxy is cut,
    /// and new ones are refused until `restore`.
    pub fn take_down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cuts.send_modify(|n| *n += 1);
    }
}

async fn forward(
    listener: TcpListener,
    upstream: SocketAddr,
    up: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if !up.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let mut cut = cuts.subscribe();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let mut client = client;
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.changed() => {}
            }
        });
    }
}
