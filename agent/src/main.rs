//! `wasmcni-agent`: parse the flags, run the agent on a single-threaded runtime (a node agent has little to
//! do at once; one thread keeps it small).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = wasmcni_agent::args::Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            wasmcni_agent::error!("agent.failed", error = format!("cannot start the runtime: {e}"));
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(wasmcni_agent::start::main(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            wasmcni_agent::error!("agent.failed", error = e);
            std::process::ExitCode::FAILURE
        }
    }
}
