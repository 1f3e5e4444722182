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
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
