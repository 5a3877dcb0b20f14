//! A UDP DNS server on 127.0.0.1:0 answering A queries from a mutable table, for STRICT_DNS
//! clusters. Unknown names get NXDOMAIN; other query types for known names get an empty
//! NOERROR answer. Records carry TTL 0 so nothing upstream of the resolver caches them.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

type Table = Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>;

/// A running DNS server; stops when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    table: Table,
    queries: Arc<Mutex<HashMap<String, usize>>>,
    total: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl DnsServer {
    pub async fn spawn() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
        let addr = socket.local_addr().expect("local_addr");
        let table: Table = Arc::default();
        let queries: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let total = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(socket, table.clone(), queries.clone(), total.clone()));
        DnsServer { addr, table, queries, total, task }
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
        self.table.lock().unwrap().insert(normalize(name), ips);
    }

    /// Forgets `name` (NXDOMAIN from now on).
    pub fn remove(&self, name: &str) {
        self.table.lock().unwrap().remove(&normalize(name));
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

fn answer(request: &Message, table: &Table, queries: &Arc<Mutex<HashMap<String, usize>>>) -> Message {
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    let table = table.lock().unwrap();
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
                    response.add_answer(Record::from_rdata(query.name().clone(), 0, RData::A(A(*ip))));
                }
            }
            Some(_) => {}
        }
    }
    response.set_response_code(code);
    response
}
