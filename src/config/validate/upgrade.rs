//! `upgrade_configs`, on the connection manager and on a route's action: which HTTP/1.1
//! `Upgrade` types (WebSocket and the like) are tunnelled to the upstream. `CONNECT` is
//! refused by name (legate does not proxy it); an upgrade's own `filters` and a route's
//! `connect_config` are not in the support table and so refused at their paths.

use super::super::model::UpgradeConfig;
use super::super::reader::{Ctx, Obj};

/// The `upgrade_configs` list of `o`, each type lowercased (Envoy compares them
/// case-insensitively); a type listed twice is refused, as Envoy refuses it.
pub(crate) fn upgrade_configs(ctx: &mut Ctx, o: &mut Obj<'_>) -> Vec<UpgradeConfig> {
    let mut out: Vec<UpgradeConfig> = Vec::new();
    for mut u in o.objs(ctx, "upgrade_configs") {
        let upgrade_type = u.str(ctx, "upgrade_type");
        let enabled = u.bool(ctx, "enabled").unwrap_or(true);
        let type_path = u.at("upgrade_type");
        let path = u.path.clone();
        u.finish(ctx, &[]);
        let Some(upgrade_type) = upgrade_type.map(|t| t.to_ascii_lowercase()) else {
            ctx.err(type_path, "missing upgrade_type");
            continue;
        };
        if upgrade_type.is_empty() {
            ctx.err(type_path, "must not be empty");
        } else if upgrade_type == "connect" {
            ctx.err(type_path, "not supported: legate does not proxy CONNECT (only HTTP/1.1 Upgrade types)");
        } else if out.iter().any(|c| c.upgrade_type == upgrade_type) {
            ctx.err(&path, format!("multiple upgrade configs with the same name: '{upgrade_type}'"));
        } else {
            out.push(UpgradeConfig { upgrade_type, enabled });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::reader::FieldPath;

    fn read(yaml: &str) -> (Vec<UpgradeConfig>, Vec<String>) {
        let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap_or(serde_yaml::Value::Null);
        let mut ctx = Ctx::new("f.yaml");
        let Some(mut o) = Obj::new(&mut ctx, &v, FieldPath::top("hcm")) else { panic!("not an object") };
        let out = upgrade_configs(&mut ctx, &mut o);
        (out, ctx.errors.iter().map(|e| format!("{}: {}", e.path, e.message)).collect())
    }

    #[test]
    fn types_are_lowercased_and_enabled_by_default() {
        let (out, errs) = read("{upgrade_configs: [{upgrade_type: WebSocket}, {upgrade_type: foo, enabled: false}]}");
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            out,
            [
                UpgradeConfig { upgrade_type: "websocket".into(), enabled: true },
                UpgradeConfig { upgrade_type: "foo".into(), enabled: false }
            ]
        );
    }

    #[test]
    fn connect_duplicates_and_missing_types_are_refused_at_their_paths() {
        let (_, errs) =
            read("{upgrade_configs: [{upgrade_type: CONNECT}, {upgrade_type: ws}, {upgrade_type: WS}, {}]}");
        assert_eq!(
            errs,
            [
                "hcm.upgrade_configs[0].upgrade_type: not supported: legate does not proxy CONNECT (only HTTP/1.1 Upgrade types)",
                "hcm.upgrade_configs[2]: multiple upgrade configs with the same name: 'ws'",
                "hcm.upgrade_configs[3].upgrade_type: missing upgrade_type",
            ]
        );
    }
}
