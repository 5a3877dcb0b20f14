//! A DNS server on 127.0.0.1 or another loopback address (UDP, and TCP on the same port)
//! answering A queries from a mutable table, for STRICT_DNS clusters. Unknown names get
//! NXDOMAIN; other query types for known names get an empty NOERROR answer. Records carry
//! TTL 0 (nothing upstream of the resolver caches them) unless a test sets another.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// The A records by name, and the TTL (seconds) every answer carries.
#[derive(Clone, Default)]
struct Table {
    records: Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>,
    ttl: Arc<AtomicU32>,
}

/// A running DNS server; stops when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    table: Table,
    queries: Arc<Mutex<HashMap<String, usize>>>,
    total: Arc<AtomicUsize>,
    tcp: Arc<AtomicUsize>,
    task: JoinHandle<()>,
    tcp_task: JoinHandle<()>,
}

impl DnsServer {
    pub async fn spawn() -> DnsServer {
        Self::spawn_at("127.0.0.1").await
    }

    /// A server on `ip` (a loopback address), on a free port.
    pub async fn spawn_at(ip: &str) -> DnsServer {
        // The TCP port may be taken where the UDP one was free: a few tries.
        let (socket, listener) = 'bind: {
            for _ in 0..20 {
                let socket = UdpSocket::bind((ip, 0)).await.expect("bind dns");
                if let Ok(l) = TcpListener::bind(socket.local_addr().expect("local_addr")).await {
                    break 'bind (socket, l);
                }
            }
            panic!("no port free for both UDP and TCP");
        };
        let addr = socket.local_addr().expect("local_addr");
        let table = Table::default();
        let queries: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (total, tcp) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let task = tokio::spawn(serve(socket, table.clone(), queries.clone(), total.clone()));
        let tcp_task = tokio::spawn(serve_tcp(listener, table.clone(), queries.clone(), tcp.clone()));
        DnsServer { addr, table, queries, total, tcp, task, tcp_task }
    }

    /// From now on, answers carry this TTL.
    pub fn set_ttl(&self, seconds: u32) {
        self.table.ttl.store(seconds, Ordering::SeqCst);
    }

    /// Queries received over TCP so far.
    pub fn tcp_queries(&self) -> usize {
        self.tcp.load(Ordering::SeqCst)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Sets the A records of `name` (an empty list answers NOERROR with no records).
    pub fn set(&self, name: &str, ips: &[&str]) {
        let ips = ips.iter().map(|ip| ip.parse().expect("ipv4 address")).collect();
        self.table.records.lock().unwrap().insert(normalize(name), ips);
    }

    /// Forgets `name` (NXDOMAIN from now on).
    pub fn remove(&self, name: &str) {
        self.table.records.lock().unwrap().remove(&normalize(name));
    }

    /// A queries received for `name` so far.
    pub fn queries(&self, name: &str) -> usize {
        self.queries.lock().unwrap().get(&normalize(name)).copied().unwrap_or(0)
    }

    /// Queries of any kind received so far.
    pub fn total_queries(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
        self.tcp_task.abort();
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

async fn serve(socket: UdpSocket, table: Table, queries: Arc<Mutex<HashMap<String, usize>>>, total: Arc<AtomicUsize>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        total.fetch_add(1, Ordering::SeqCst);
        let Ok(request) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let response = answer(&request, &table, &queries);
        if let Ok(bytes) = response.to_vec() {
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

/// DNS over TCP: each message behind a two-byte length.
async fn serve_tcp(
    listener: TcpListener,
    table: Table,
    queries: Arc<Mutex<HashMap<String, usize>>>,
    tcp: Arc<AtomicUsize>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        let (table, queries, tcp) = (table.clone(), queries.clone(), tcp.clone());
        tokio::spawn(async move {
            let _ = answer_tcp(stream, &table, &queries, &tcp).await;
        });
    }
}

async fn answer_tcp(
    mut stream: TcpStream,
    table: &Table,
    queries: &Arc<Mutex<HashMap<String, usize>>>,
    tcp: &AtomicUsize,
) -> std::io::Result<()> {
    loop {
        let len = stream.read_u16().await?;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await?;
        tcp.fetch_add(1, Ordering::SeqCst);
        let Ok(request) = Message::from_vec(&buf) else { return Ok(()) };
        let Ok(bytes) = answer(&request, table, queries).to_vec() else { return Ok(()) };
        stream.write_u16(bytes.len() as u16).await?;
        stream.write_all(&bytes).await?;
    }
}

fn answer(request: &Message, table: &Table, queries: &Arc<Mutex<HashMap<String, usize>>>) -> Message {
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    let ttl = table.ttl.load(Ordering::SeqCst);
    let table = table.records.lock().unwrap();
    let mut code = ResponseCode::NoError;
    for query in request.queries() {
        response.add_query(query.clone());
        let name = normalize(&query.name().to_utf8());
        if query.query_type() == RecordType::A {
            *queries.lock().unwrap().entry(name.clone()).or_insert(0) += 1;
        }
        match table.get(&name) {
            None => code = ResponseCode::NXDomain,
            Some(ips) if query.query_type() == RecordType::A => {
                for ip in ips {
                    response.add_answer(Record::from_rdata(query.name().clone(), ttl, RData::A(A(*ip))));
                }
            }
            Some(_) => {}
        }
    }
    response.set_response_code(code);
    response
}
