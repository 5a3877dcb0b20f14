//! Regenerates `src/config/schema/envoy.desc`: the descriptor set of Envoy's v3 API that
//! legate parses configuration with, trimmed to what configuration can reach (the bootstrap,
//! discovery responses and every extension type a `typed_config` may name) so that the
//! gRPC services, admin output and data formats stay out of the binary.
//!
//! Options (validation rules, annotations, docs) are dropped but for the two that change how
//! a message parses (`map_entry`, `allow_alias`): the pool stays resident for reloads, and
//! they are most of its memory.
//!
//! The input is the whole set the `envoy-types` crate ships (built from Envoy's own protos,
//! Apache-2.0): run `scripts/envoy-descriptors.sh`, which finds it and calls this.

use std::collections::HashSet;

use prost::Message;
use prost_reflect::DescriptorPool;
use prost_types::{DescriptorProto, EnumDescriptorProto, EnumOptions, FileDescriptorProto, MessageOptions};

/// Packages whose files are kept, with everything they import.
const ROOTS: &[&str] =
    &["envoy.config.", "envoy.extensions.", "envoy.service.discovery.v3", "envoy.type.", "envoy.api.v2."];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(input), Some(output)) = (args.get(1), args.get(2)) else {
        return Err("usage: envoy_descriptors <types.bin> <out.desc>".into());
    };
    let pool = DescriptorPool::decode(std::fs::read(input)?.as_slice())?;
    let mut keep: HashSet<String> = HashSet::new();
    let mut todo: Vec<_> = pool.files().filter(|f| ROOTS.iter().any(|r| f.package_name().starts_with(r))).collect();
    while let Some(f) = todo.pop() {
        if keep.insert(f.name().to_string()) {
            todo.extend(f.dependencies());
        }
    }
    // The pool's order is a dependency order: keep it.
    let file = pool
        .files()
        .filter(|f| keep.contains(f.name()))
        .map(|f| {
            let mut proto = f.file_descriptor_proto().clone();
            strip_file(&mut proto);
            proto
        })
        .collect();
    let set = prost_types::FileDescriptorSet { file };
    std::fs::write(output, set.encode_to_vec())?;
    eprintln!("kept {} of {} files", keep.len(), pool.files().count());
    Ok(())
}

fn strip_file(f: &mut FileDescriptorProto) {
    f.options = None;
    f.source_code_info = None;
    f.service.clear();
    f.extension.clear();
    f.message_type.iter_mut().for_each(strip_message);
    f.enum_type.iter_mut().for_each(strip_enum);
}

fn strip_message(m: &mut DescriptorProto) {
    let map_entry = m.options.as_ref().and_then(|o| o.map_entry).filter(|e| *e);
    m.options = map_entry.map(|e| MessageOptions { map_entry: Some(e), ..Default::default() });
    for f in &mut m.field {
        f.options = None;
    }
    m.extension.clear();
    for o in &mut m.oneof_decl {
        o.options = None;
    }
    m.nested_type.iter_mut().for_each(strip_message);
    m.enum_type.iter_mut().for_each(strip_enum);
}

fn strip_enum(e: &mut EnumDescriptorProto) {
    let alias = e.options.as_ref().and_then(|o| o.allow_alias).filter(|a| *a);
    e.options = alias.map(|a| EnumOptions { allow_alias: Some(a), ..Default::default() });
    for v in &mut e.value {
        v.options = None;
    }
}
