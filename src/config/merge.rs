//! `--config-yaml` over the bootstrap file with protobuf `MergeFrom` semantics, on the value
//! tree: scalars replace, mappings (messages and maps) merge key by key, lists append.

use serde_yaml::Value;

/// Merges `over` into `base`.
pub(crate) fn merge_from(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge_from(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Sequence(b), Value::Sequence(o)) => b.extend(o),
        // An unset field in the overlay leaves the base alone.
        (_, Value::Null) => {}
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap_or(Value::Null)
    }

    #[test]
    fn scalars_replace_maps_merge_lists_append() {
        let mut base = y("{a: 1, m: {x: 1, y: 2}, l: [1, 2]}");
        merge_from(&mut base, y("{a: 2, m: {y: 3, z: 4}, l: [3], n: new}"));
        assert_eq!(base, y("{a: 2, m: {x: 1, y: 3, z: 4}, l: [1, 2, 3], n: new}"));
    }
}
