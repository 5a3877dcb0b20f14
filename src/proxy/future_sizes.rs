//! The sizes of the request's futures, measured without running them: hyper keeps the
//! service future (`stream::handle`) in a slot per downstream connection, and every byte of
//! it is also initialised (and moved) per request. Bounds generous enough for compiler
//! changes, tight enough to catch a large state inlined on the common path again.

use std::mem::size_of;

fn ret2<A, B, R>(_: impl Fn(A, B) -> R) -> usize {
    size_of::<R>()
}
fn ret4<A, B, C, D, R>(_: impl Fn(A, B, C, D) -> R) -> usize {
    size_of::<R>()
}
fn ret5<A, B, C, D, E, R>(_: impl Fn(A, B, C, D, E) -> R) -> usize {
    size_of::<R>()
}
fn ret6<A, B, C, D, E, F, R>(_: impl Fn(A, B, C, D, E, F) -> R) -> usize {
    size_of::<R>()
}
fn ret7<A, B, C, D, E, F, G, R>(_: impl Fn(A, B, C, D, E, F, G) -> R) -> usize {
    size_of::<R>()
}
fn ret9<A, B, C, D, E, F, G, H, I, R>(_: impl Fn(A, B, C, D, E, F, G, H, I) -> R) -> usize {
    size_of::<R>()
}
#[allow(clippy::type_complexity)]
fn ret11<A, B, C, D, E, F, G, H, I, J, K, R>(_: impl Fn(A, B, C, D, E, F, G, H, I, J, K) -> R) -> usize {
    size_of::<R>()
}

#[test]
fn the_request_futures_stay_small() {
    let handle = ret2(super::super::stream::handle);
    let process = ret7(super::process);
    let pass = ret9(super::pass);
    let forward_to = ret11(super::super::router::forward_to);
    let forward = ret7(super::super::forward::forward);
    let send = ret2(crate::upstream::pool::Pool::send);
    let decode = ret6(crate::filters::Chain::decode);
    let encode = ret4(crate::filters::Chain::encode);
    let timer = ret5(super::super::stream_timer::expired_unless_routed);
    eprintln!(
        "sizes: StreamInfo {} filters::Stream {} Parts {} Response {} timer {timer} AttemptTemplate {} BodySource {}",
        size_of::<super::super::access::StreamInfo>(),
        size_of::<crate::filters::Stream>(),
        size_of::<http::request::Parts>(),
        size_of::<http::Response<super::super::body::ResBody>>(),
        size_of::<super::super::forward::AttemptTemplate>(),
        size_of::<super::super::forward::BodySource>(),
    );
    eprintln!(
        "future sizes: handle {handle} process {process} pass {pass} forward_to {forward_to} \
         forward {forward} Pool::send {send} filters decode {decode} encode {encode}"
    );
    // Measured at 9.4 KB (from 24 KB with the filters' and the pool's rare paths inline).
    assert!(handle < 12 * 1024, "handle's future: {handle} bytes");
    assert!(send < 3 * 1024, "Pool::send's future: {send} bytes");
}
