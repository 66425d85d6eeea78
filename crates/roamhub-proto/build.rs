//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and generates the tonic code.

use std::path::PathBuf;

/// Enum-typed fields of the public API and the serializer that names their values.
const ENUM_FIELDS: [(&str, &str); 4] = [
    ("Consent.legal_basis", "legal_basis"),
    ("Consent.status", "consent_status"),
    ("ServiceConsent.status", "consent_status"),
    ("AccessRecord.outcome", "access_outcome"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        proto_root.join("roamhub/v1/roamhub.proto"),
        proto_root.join("roamhub/raft/v1/raft.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let descriptors = protox::compile(&files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("roamhub_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    // Public messages derive `Serialize` for the CLI's `--json`; enum fields render by name.
    let mut build =
        tonic_prost_build::configure().type_attribute(".roamhub.v1", "#[derive(serde::Serialize)]");
    for (field, enum_name) in ENUM_FIELDS {
        let attribute = format!("#[serde(serialize_with = \"crate::json::{enum_name}\")]");
        build = build.field_attribute(format!(".roamhub.v1.{field}"), attribute);
    }
    build.compile_fds(descriptors)?;
    Ok(())
}
