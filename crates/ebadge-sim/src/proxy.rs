//! A TCP proxy between a client and the broker that counts the bytes each way (what a message
//! costs on the wire) and can break the link two ways: `cut` drops every connection and refuses
//! new ones (the peer sees a reset at once), `stall` swallows every byte without an error (the
//! peer notices only by missing heartbeats or timeouts). The fault-injection tests and the
//! benchmarks use it.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use ebadge_sim::proxy::Proxy;
//! let proxy = Proxy::start(([127, 0, 0, 1], 5671).into()).await?;
//! // … point a profile at proxy.addr, connect, send …
//! proxy.cut();
//! proxy.restore();
//! println!("{} bytes up, {} down", proxy.bytes_up(), proxy.bytes_down());
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const UP: u8 = 0;
const CUT: u8 = 1;
const STALLED: u8 = 2;

/// A running proxy.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    state: Arc<AtomicU8>,
    generation: watch::Sender<u64>,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

impl Proxy {
    /// Forwards `127.0.0.1:<free port>` to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(AtomicU8::new(UP));
        let (generation, _) = watch::channel(0u64);
        let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (accept_state, accept_generation) = (state.clone(), generation.clone());
        let (accept_up, accept_down) = (up.clone(), down.clone());
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if accept_state.load(Ordering::SeqCst) == CUT {
                    drop(inbound);
                    continue;
                }
                let (state, mut cut) = (accept_state.clone(), accept_generation.subscribe());
                let (up, down) = (accept_up.clone(), accept_down.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = outbound.into_split();
                    let (s1, s2) = (state.clone(), state);
                    tokio::select! {
                        _ = pump(&mut ri, &mut wo, &s1, &up) => {}
                        _ = pump(&mut ro, &mut wi, &s2, &down) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Proxy {
            addr,
            state,
            generation,
            up,
            down,
        })
    }

    /// Bytes forwarded from clients to the broker so far.
    pub fn bytes_up(&self) -> u64 {
        self.up.load(Ordering::Relaxed)
    }

    /// Bytes forwarded from the broker to clients so far.
    pub fn bytes_down(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }

    /// Cuts the link: open connections are dropped, new ones refused.
    pub fn cut(&self) {
        self.state.store(CUT, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Stalls the link: connections stay open but every byte is swallowed, new ones included.
    pub fn stall(&self) {
        self.state.store(STALLED, Ordering::SeqCst);
    }

    /// Lets connections through again. Connections that lived through a stall are dropped, as
    /// a real link's would be after the peers gave up on them.
    pub fn restore(&self) {
        if self.state.swap(UP, Ordering::SeqCst) == STALLED {
            self.generation.send_modify(|g| *g += 1);
        }
    }
}

async fn pump(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    state: &AtomicU8,
    forwarded: &AtomicU64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if state.load(Ordering::SeqCst) == STALLED {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        forwarded.fetch_add(n as u64, Ordering::Relaxed);
    }
}
