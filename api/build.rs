//! Compiles our etcd v3 .proto files with `protox` (pure Rust, no `protoc`)
//! and generates prost messages plus tonic client and server stubs.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const ROOTS: &[&str] = &[
        "proto/etcdserverpb/rpc.proto",
        "proto/v3lockpb/v3lock.proto",
        "proto/v3electionpb/v3election.proto",
    ];
    for dir in [
        "proto/etcdserverpb",
        "proto/mvccpb",
        "proto/authpb",
        "proto/v3lockpb",
        "proto/v3electionpb",
    ] {
        println!("cargo:rerun-if-changed={dir}");
    }
    let files = ROOTS.iter().map(|p| p.trim_start_matches("proto/"));
    let descriptors = protox::compile(files, ["proto"])?;
    // The descriptors themselves, for JSON transcoding (the reference server's gateway).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("descriptors.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
