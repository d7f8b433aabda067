//! Compiles `proto/caravan/v1/*.proto` with protox (pure Rust), so building
//! Caravan needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = "../../proto";
    let files = [
        "caravan/v1/records.proto",
        "caravan/v1/payloads.proto",
        "caravan/v1/reconcile.proto",
        "caravan/v1/booking.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={root}/{file}");
    }
    let descriptors = protox::compile(files, [root])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
