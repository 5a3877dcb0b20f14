//! An upstream's answer as legate's own HTTP/1.1 client reads it (`upstream::h1`): the head,
//! then the body by its framing, arriving in pieces. Whatever the bytes, the client ends with
//! an error or a response; a body framed by a length never yields more or fewer bytes than
//! it says, and the connection goes back for another request only after a complete answer.
//!
//! Input: the first byte sets the size of the pieces the answer arrives in; the rest is the
//! answer.
#![no_main]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::{Method, Request};
use http_body_util::BodyExt;
use legate::body::ReqBody;
use legate::upstream::h1::{self, decode::Home, encode, Conn};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

#[derive(Default)]
struct Back(AtomicUsize);

impl Home<DuplexStream> for Back {
    fn take_back(self: Arc<Self>, _conn: Box<Conn<DuplexStream>>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&piece, answer)) = data.split_first() else { return };
    let piece = usize::from(piece % 32) + 1;
    let answer = answer.to_vec();
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else { return };
    rt.block_on(async move {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let mut request = [0u8; 256];
            let _ = server.read(&mut request).await;
            for p in answer.chunks(piece) {
                if server.write_all(p).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        });
        let head_request = piece % 5 == 0;
        let method = if head_request { Method::HEAD } else { Method::GET };
        let req = Request::builder().method(method).uri("/").body(ReqBody::Full(None)).expect("request");
        let plan = encode::plan(&req).expect("a bodiless GET is the own client's");
        let mut conn = Conn::new(client);
        let Ok(head) = h1::exchange(&mut conn, &req, &plan, false, 4096).await else { return };
        let length: Option<u64> = head.response.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok());
        let bodiless = head_request || matches!(head.response.status().as_u16(), 204 | 304);
        let chunked = head.response.headers().contains_key("transfer-encoding");
        let back = Arc::new(Back::default());
        let mut body = h1::decode::response(head, conn, Arc::clone(&back) as Arc<dyn Home<DuplexStream>>).into_body();
        let mut got = 0u64;
        let mut complete = true;
        // Bounded: the answer is finite and the writer ends, so the body ends or fails.
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => got += f.data_ref().map_or(0, |d| d.len() as u64),
                Err(_) => {
                    complete = false;
                    break;
                }
            }
        }
        if bodiless {
            assert_eq!(got, 0, "a bodiless answer gave a body");
        } else if let (Some(n), false, true) = (length, chunked, complete) {
            assert_eq!(got, n, "a body of another length than its content-length");
        }
        if !complete {
            assert_eq!(back.0.load(Ordering::SeqCst), 0, "a connection kept after a broken answer");
        }
    });
});
