//! The `meshconform` binary; everything lives in [`meshconform::cli`].

fn main() {
    std::process::exit(meshconform::cli::main());
}
