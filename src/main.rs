//! The `tollgate` binary: `tollgate serve`, `tollgate admin …`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tollgate::server::cli::main().await
}
