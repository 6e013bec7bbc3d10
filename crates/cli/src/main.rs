//! The `attest` binary; everything lives in the library so tests run the same code.

/// mimalloc rather than glibc's malloc: under load a page's many small allocations (rows,
/// JSON, template rendering) cost a third of the server's CPU in glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    attest_cli::main()
}
