//! A `DownstreamTlsContext`'s session resumption fields (`session_ticket_keys`,
//! `disable_stateless_session_resumption`, `disable_stateful_session_resumption`), read for
//! `tls.rs`; the key files are recorded to be watched like a certificate's.

use serde_yaml::Value;

use crate::config::reader::{Ctx, Obj};
use crate::discovery::WatchSpec;
use crate::tls::secrets::Reads;

use super::common::data_source;

/// `session_ticket_keys` (80 bytes each, as Envoy requires; a file is watched like a
/// certificate's), `disable_stateless_session_resumption` (of the same `oneof`) and
/// `disable_stateful_session_resumption`. `session_ticket_keys_sds_secret_config` is left
/// unread: refused as not implemented.
pub(super) fn resumption(ctx: &mut Ctx, o: &mut Obj<'_>, reads: &mut Reads) -> crate::tls::tickets::Resumption {
    use crate::tls::tickets::{Resumption, KEY_LEN};
    let mut r = Resumption::default();
    let at_stateless = o.at("disable_stateless_session_resumption");
    r.no_tickets = o.bool(ctx, "disable_stateless_session_resumption").unwrap_or(false);
    r.no_cache = o.bool(ctx, "disable_stateful_session_resumption").unwrap_or(false);
    if let Some(mut k) = o.obj(ctx, "session_ticket_keys") {
        if o.has("disable_stateless_session_resumption") {
            ctx.err(
                at_stateless,
                "only one of session_ticket_keys and disable_stateless_session_resumption may be set",
            );
        }
        let items = k.list(ctx, "keys");
        if items.is_empty() {
            ctx.err(k.at("keys"), "at least one key is required");
        }
        let mut list = Vec::new();
        for (item, path) in items {
            let file = item.get("filename").and_then(Value::as_str).map(str::to_string);
            let Some(data) = Obj::new(ctx, item, path.clone()).and_then(|d| data_source(ctx, d)) else { continue };
            if let Some(f) = file {
                reads.file(WatchSpec::new(f), &data);
            }
            match <[u8; KEY_LEN]>::try_from(data.as_ref()) {
                Ok(key) => list.push(key),
                Err(_) => ctx.err(
                    &path,
                    format!(
                        "Incorrect TLS session ticket key length. Length {}, expected length {KEY_LEN}.",
                        data.len()
                    ),
                ),
            }
        }
        k.finish(ctx, &[]);
        r.keys = list;
    }
    r
}
