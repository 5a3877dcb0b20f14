//! `/certs`: every TLS context's certificates in Envoy's JSON shape (per context, its
//! trusted CAs and the leaf of each `tls_certificates` entry, with serial, SANs, validity
//! and `days_until_expiration`): the listeners' contexts, then the clusters' upstream ones
//! (by cluster name; a context without certificates is listed empty, as Envoy lists it).

use serde_json::{json, Value};

use crate::snapshot::Snapshot;
use crate::tls::certs::{CertInfo, San};

fn time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default()
}

fn cert(c: &CertInfo, now: i64) -> Value {
    let sans: Vec<Value> = c
        .sans
        .iter()
        .map(|s| match s {
            San::Dns(d) => json!({ "dns": d }),
            San::Uri(u) => json!({ "uri": u }),
            San::Email(e) => json!({ "email": e }),
            San::Ip(ip) => json!({ "ip_address": ip.to_string() }),
        })
        .collect();
    json!({
        "path": c.path,
        "serial_number": c.serial_number,
        "subject_alt_names": sans,
        // uint64 in Envoy's proto JSON: a string.
        "days_until_expiration": c.days_until_expiration(now).to_string(),
        "valid_from": time(c.not_before),
        "expiration_time": time(c.not_after),
    })
}

/// The `/certs` document for the running snapshot.
pub fn json(snap: &Snapshot) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut out = Vec::new();
    for l in &snap.listeners {
        for chain in l.config.chains() {
            let Some(tls) = &chain.tls else { continue };
            let tls = tls.material();
            out.push(json!({
                "ca_cert": tls.ca.iter().map(|c| cert(c, now)).collect::<Vec<_>>(),
                "cert_chain": tls.certs.iter().filter_map(|c| c.first()).map(|c| cert(c, now)).collect::<Vec<_>>(),
            }));
        }
    }
    let mut clusters: Vec<_> =
        snap.clusters.values().filter_map(|c| Some((c.name(), c.config.tls.as_ref()?))).collect();
    clusters.sort_by_key(|(name, _)| *name);
    for (_, tls) in clusters {
        let tls = tls.material();
        out.push(json!({
            "ca_cert": tls.ca.iter().map(|c| cert(c, now)).collect::<Vec<_>>(),
            "cert_chain": tls.certs.first().map(|c| cert(c, now)).into_iter().collect::<Vec<_>>(),
        }));
    }
    json!({ "certificates": out })
}
