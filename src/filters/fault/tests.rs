use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use super::*;
use crate::config::filters::{FaultAbort, FaultDelay};
use crate::filters::Stream;

fn request<'a>(headers: &'a HeaderMap, cluster: Option<&'a str>) -> FaultRequest<'a> {
    FaultRequest { headers, view: RequestView::new("/x", "GET", "h", "http", headers), cluster, runtime: None }
}

fn all(numerator: u32) -> Fraction {
    Fraction { numerator, denominator: 100 }
}

fn delay(d: Duration, max: Option<u32>) -> FaultConfig {
    FaultConfig {
        delay: Some(FaultDelay { kind: DelayKind::Fixed(d), percentage: all(100) }),
        max_active_faults: max,
        ..FaultConfig::empty()
    }
}

fn header_abort() -> FaultConfig {
    FaultConfig { abort: Some(FaultAbort { kind: AbortKind::Header, percentage: all(100) }), ..FaultConfig::empty() }
}

#[tokio::test(start_paused = true)]
async fn a_fixed_delay_waits_on_tokio_time_and_counts_while_active() {
    let store = Store::new();
    let config = delay(Duration::from_secs(2), None);
    let fault = Fault::new(&config, &store, "in");
    let headers = HeaderMap::new();
    let mut stream = Stream::default();
    let started = tokio::time::Instant::now();
    let settings = Arc::clone(fault.settings());
    let mut delayed = Box::pin(fault.decode(&settings, request(&headers, None), &mut stream));
    assert!(tokio::time::timeout(Duration::from_millis(1999), delayed.as_mut()).await.is_err(), "released early");
    assert_eq!(store.value("http.in.fault.active_faults"), Some(1));
    assert!(delayed.await.is_ok());
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert!(stream.delay_injected);
    assert_eq!(store.value("http.in.fault.delays_injected"), Some(1));
    drop(stream);
    assert_eq!(store.value("http.in.fault.active_faults"), Some(0));
}

#[tokio::test(start_paused = true)]
async fn max_active_faults_lets_the_overflow_through_undelayed() {
    let store = Store::new();
    let config = delay(Duration::from_secs(5), Some(1));
    let fault = Fault::new(&config, &store, "in");
    let headers = HeaderMap::new();
    let settings = Arc::clone(fault.settings());
    let mut first = Stream::default();
    let mut held = std::pin::pin!(fault.decode(&settings, request(&headers, None), &mut first));
    assert!(tokio::time::timeout(Duration::from_millis(1), &mut held).await.is_err());
    let mut second = Stream::default();
    let started = tokio::time::Instant::now();
    assert!(fault.decode(&settings, request(&headers, None), &mut second).await.is_ok());
    assert_eq!(started.elapsed(), Duration::ZERO, "the second request was delayed");
    assert!(!second.delay_injected);
    assert_eq!(store.value("http.in.fault.faults_overflow"), Some(1));
    assert_eq!(store.value("http.in.fault.delays_injected"), Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_header_delay_takes_its_milliseconds_from_the_request() {
    let store = Store::new();
    let config = FaultConfig {
        delay: Some(FaultDelay { kind: DelayKind::Header, percentage: all(100) }),
        ..FaultConfig::empty()
    };
    let fault = Fault::new(&config, &store, "in");
    let mut headers = HeaderMap::new();
    headers.insert("x-envoy-fault-delay-request", HeaderValue::from_static("250"));
    let started = tokio::time::Instant::now();
    let mut stream = Stream::default();
    assert!(fault.decode(fault.settings(), request(&headers, None), &mut stream).await.is_ok());
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    // The percentage header only lowers the configured percentage.
    headers.insert("x-envoy-fault-delay-request-percentage", HeaderValue::from_static("0"));
    let started = tokio::time::Instant::now();
    let mut stream = Stream::default();
    assert!(fault.decode(fault.settings(), request(&headers, None), &mut stream).await.is_ok());
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(!stream.delay_injected);
}

#[tokio::test]
async fn header_aborts_answer_with_the_requested_status() {
    let store = Store::new();
    let fault = Fault::new(&header_abort(), &store, "in");
    let mut headers = HeaderMap::new();
    let decode = |h: &HeaderMap| {
        let h = h.clone();
        let fault = &fault;
        async move { fault.decode(fault.settings(), request(&h, None), &mut Stream::default()).await }
    };
    assert!(decode(&headers).await.is_ok(), "no header, no abort");
    headers.insert("x-envoy-fault-abort-request", HeaderValue::from_static("600"));
    assert!(decode(&headers).await.is_ok(), "out of range");
    headers.insert("x-envoy-fault-abort-request", HeaderValue::from_static("418"));
    assert_eq!(decode(&headers).await, Err(LocalReason::FaultAbort { status: StatusCode::IM_A_TEAPOT, grpc: None }));
    headers.remove("x-envoy-fault-abort-request");
    headers.insert("x-envoy-fault-abort-grpc-request", HeaderValue::from_static("14"));
    assert_eq!(decode(&headers).await, Err(LocalReason::FaultAbort { status: StatusCode::OK, grpc: Some(14) }));
    headers.insert("x-envoy-fault-abort-request-percentage", HeaderValue::from_static("0"));
    assert!(decode(&headers).await.is_ok(), "percentage 0");
    headers.remove("x-envoy-fault-abort-request-percentage");
    headers.insert("x-envoy-downstream-service-cluster", HeaderValue::from_static("web"));
    assert!(decode(&headers).await.is_err());
    assert_eq!(store.value("http.in.fault.aborts_injected"), Some(3));
    assert_eq!(store.value("http.in.fault.web.aborts_injected"), Some(1));
}

#[tokio::test]
async fn faults_apply_only_to_matching_requests() {
    let store = Store::new();
    let mut config = FaultConfig {
        abort: Some(FaultAbort { kind: AbortKind::Http(503), percentage: all(100) }),
        upstream_cluster: Some("a".to_string()),
        downstream_nodes: vec!["n1".to_string()],
        ..FaultConfig::empty()
    };
    let mut headers = HeaderMap::new();
    let run = |config: &FaultConfig, h: &HeaderMap, cluster: Option<&'static str>| {
        let fault = Fault::new(config, &store, "in");
        let h = h.clone();
        async move { fault.decode(fault.settings(), request(&h, cluster), &mut Stream::default()).await.is_err() }
    };
    assert!(!run(&config, &headers, Some("a")).await, "no downstream node");
    headers.insert("x-envoy-downstream-service-node", HeaderValue::from_static("n1"));
    assert!(run(&config, &headers, Some("a")).await);
    assert!(!run(&config, &headers, Some("b")).await, "other cluster");
    assert!(!run(&config, &headers, None).await, "no cluster");
    config.headers = vec![crate::config::model::HeaderMatcher {
        name: "x-fault".to_string(),
        kind: crate::config::model::HeaderMatchKind::Present(true),
        invert_match: false,
        treat_missing_as_empty: false,
    }];
    assert!(!run(&config, &headers, Some("a")).await, "header missing");
    headers.insert("x-fault", HeaderValue::from_static("1"));
    assert!(run(&config, &headers, Some("a")).await);
}

#[test]
fn percentages_follow_their_denominator() {
    assert!(!hit(Fraction { numerator: 0, denominator: 100 }));
    assert!(hit(Fraction { numerator: 1_000_000, denominator: 1_000_000 }));
    let hits = (0..10_000).filter(|_| hit(Fraction { numerator: 5_000, denominator: 10_000 })).count();
    assert!((4_000..6_000).contains(&hits), "{hits}");
}

#[tokio::test]
async fn runtime_keys_override_the_percentages_statuses_and_delays() {
    use crate::runtime::{Runtime, RuntimeLayer};
    let store = Store::new();
    // The fault-injection sandbox: percentages 0 in the configuration, the runtime decides.
    let config = FaultConfig {
        abort: Some(FaultAbort { kind: AbortKind::Http(503), percentage: all(0) }),
        delay: Some(FaultDelay { kind: DelayKind::Fixed(Duration::from_secs(3)), percentage: all(0) }),
        ..FaultConfig::empty()
    };
    let fault = Fault::new(&config, &store, "in");
    let headers = HeaderMap::new();
    let run = |rt: Arc<Runtime>, h: HeaderMap| {
        let fault = &fault;
        async move {
            let req = FaultRequest { runtime: Some(&rt), ..request(&h, None) };
            fault.decode(fault.settings(), req, &mut Stream::default()).await
        }
    };
    let layer = |pairs: &[(&str, &str)]| {
        let pairs = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Runtime::new(&[("s".to_string(), RuntimeLayer::Static(pairs))], "")
    };
    assert!(run(layer(&[]), headers.clone()).await.is_ok());
    let abort = layer(&[("fault.http.abort.abort_percent", "100"), ("fault.http.abort.http_status", "418")]);
    assert_eq!(
        run(abort, headers.clone()).await,
        Err(LocalReason::FaultAbort { status: StatusCode::IM_A_TEAPOT, grpc: None })
    );
    // A downstream cluster's own keys.
    let mut from_b = HeaderMap::new();
    from_b.insert("x-envoy-downstream-service-cluster", HeaderValue::from_static("b"));
    let only_b = layer(&[("fault.http.b.abort.abort_percent", "100")]);
    assert!(run(Arc::clone(&only_b), headers.clone()).await.is_ok());
    let status = StatusCode::SERVICE_UNAVAILABLE;
    assert_eq!(run(only_b, from_b).await, Err(LocalReason::FaultAbort { status, grpc: None }));
    // A delay of 0 ms from the runtime is no delay.
    let no_delay =
        layer(&[("fault.http.delay.fixed_delay_percent", "100"), ("fault.http.delay.fixed_duration_ms", "0")]);
    assert!(run(no_delay, headers).await.is_ok());
    assert_eq!(store.value("http.in.fault.delays_injected"), Some(0));
    assert_eq!(store.value("http.in.fault.aborts_injected"), Some(2));
}

#[tokio::test]
async fn the_runtime_fields_rename_the_keys_read() {
    use crate::runtime::{Runtime, RuntimeLayer};
    let store = Store::new();
    let mut config = FaultConfig {
        abort: Some(FaultAbort { kind: AbortKind::Http(503), percentage: all(0) }),
        delay: Some(FaultDelay { kind: DelayKind::Fixed(Duration::from_secs(3)), percentage: all(0) }),
        ..FaultConfig::empty()
    };
    config.keys.abort_percent = "my.abort".into();
    config.keys.abort_http_status = "my.status".into();
    config.keys.delay_percent = "my.delay".into();
    config.keys.delay_duration = "my.ms".into();
    let fault = Fault::new(&config, &store, "in");
    let headers = HeaderMap::new();
    let layer = |pairs: &[(&str, &str)]| {
        let pairs = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Runtime::new(&[("s".to_string(), RuntimeLayer::Static(pairs))], "")
    };
    let run = |rt: Arc<Runtime>| {
        let (fault, h) = (&fault, headers.clone());
        async move {
            let req = FaultRequest { runtime: Some(&rt), ..request(&h, None) };
            fault.decode(fault.settings(), req, &mut Stream::default()).await
        }
    };
    // The default keys are not read any more.
    assert!(run(layer(&[("fault.http.abort.abort_percent", "100")])).await.is_ok());
    let renamed = layer(&[("my.abort", "100"), ("my.status", "418"), ("my.delay", "100"), ("my.ms", "0")]);
    assert_eq!(run(renamed).await, Err(LocalReason::FaultAbort { status: StatusCode::IM_A_TEAPOT, grpc: None }));
    assert_eq!(store.value("http.in.fault.delays_injected"), Some(0), "a 0 ms delay from my.ms is none");
}
