//! The reader's own unit tests: field lookup, paths, enums, leftovers.

use super::*;

#[test]
fn camel_case_names_match_snake_case_fields() {
    assert!(is_camel_of("perTryTimeout", "per_try_timeout"));
    assert!(!is_camel_of("perTry", "per_try_timeout"));
    assert!(!is_camel_of("perTryTimeoutX", "per_try_timeout"));
    assert!(is_camel_of("name", "name"));
}

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap_or(Value::Null)
}

#[test]
fn reads_fields_and_reports_leftovers() {
    let v = yaml("{name: x, portValue: '80', lb_policy: round_robin, extra: 1, health_checks: []}");
    let mut ctx = Ctx::new("f.yaml");
    let Some(mut o) = Obj::new(&mut ctx, &v, FieldPath::top("c")) else { panic!("not an object") };
    assert_eq!(o.str(&mut ctx, "name").as_deref(), Some("x"));
    assert_eq!(o.u32(&mut ctx, "port_value"), Some(80));
    assert_eq!(o.enumv(&mut ctx, "lb_policy", &[("ROUND_ROBIN", Some(1)), ("MAGLEV", None)]), Some(1));
    o.finish(&mut ctx, &[]);
    let msgs: Vec<_> = ctx.errors.iter().map(|e| format!("{}: {}", e.path, e.message)).collect();
    // Without the schema pass nothing says health_checks is Envoy's: the table decides that.
    assert_eq!(msgs, ["c.extra: unknown field", "c.health_checks: unknown field"]);
}

#[test]
fn paths_render_like_envoy_field_paths() {
    let resources = FieldPath::top("resources");
    let route = resources.index(0).field("virtual_hosts").index(2).field("routes").index(7);
    assert_eq!(route.to_string(), "resources[0].virtual_hosts[2].routes[7]");
    assert_eq!(FieldPath::root().to_string(), "");
    assert_eq!(FieldPath::root().index(3).to_string(), "[3]");
    assert_eq!(FieldPath::root().field("admin").to_string(), "admin");
    let v = yaml("{m: {k.x: 1}, o: {a: 1}}");
    let mut ctx = Ctx::new("f");
    let Some(mut o) = Obj::new(&mut ctx, &v, FieldPath::root()) else { panic!("not an object") };
    let entries = o.entries(&mut ctx, "m");
    assert_eq!(entries[0].2.to_string(), "m.k.x");
    let Some(inner) = o.obj(&mut ctx, "o") else { panic!("no o") };
    inner.finish(&mut ctx, &[]);
    assert_eq!(ctx.errors[0].path, "o.a");
}

#[test]
fn enum_errors() {
    let v = yaml("{a: round_robbin, b: maglev}");
    let mut ctx = Ctx::new("f");
    let Some(mut o) = Obj::new(&mut ctx, &v, FieldPath::root()) else { panic!("not an object") };
    let t = [("ROUND_ROBIN", Some(1)), ("MAGLEV", None)];
    assert_eq!(o.enumv(&mut ctx, "a", &t), None);
    assert_eq!(o.enumv(&mut ctx, "b", &t), None);
    assert_eq!(ctx.errors[0].message, "unknown value \"round_robbin\" (expected one of ROUND_ROBIN)");
    assert_eq!(ctx.errors[1].message, "unsupported value \"maglev\"");
}

#[test]
fn lenient_enums_warn_on_unknown_names_only() {
    let v = yaml("{a: no_such, b: maglev}");
    let mut ctx = Ctx::new("f");
    ctx.lenient_enums = true;
    let Some(mut o) = Obj::new(&mut ctx, &v, FieldPath::top("o")) else { panic!("not an object") };
    let table = [("ROUND_ROBIN", Some(1)), ("MAGLEV", None)];
    assert_eq!(o.enumv(&mut ctx, "a", &table), None);
    assert_eq!(o.enumv(&mut ctx, "b", &table), None);
    assert_eq!(ctx.warnings.len(), 1, "{:?}", ctx.warnings);
    assert_eq!(ctx.warnings[0].path, "o.a");
    assert_eq!(ctx.errors.len(), 1, "{:?}", ctx.errors);
    assert_eq!(ctx.errors[0].message, "unsupported value \"maglev\"");
}
