//! Exec'd by a runtime with CNI_COMMAND set: speak CNI. Otherwise: the command line for people.

use std::io::{Read, Write};

use wasmcni::ops::dispatch;
use wasmcni::cni::request::ProcessEnv;
use wasmcni::logging;

fn main() {
    // wasmtime-wasi runs a hook's blocking WASI calls (a print, a sleep) on a tokio runtime it builds on
    // first use, by default with one worker thread per core: for one pod's hook that prints, 32 thread
    // starts on a 32-core node (its first call took 1.75 ms with 32 workers here, 0.47 with 1). A hook's
    // calls need one. Set while this is the only thread; an explicit setting is kept.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        std::env::set_var("TOKIO_WORKER_THREADS", "1");
    }
    let argv: Vec<String> = std::env::args().collect();
    let binary_name = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let code = match std::env::var("CNI_COMMAND") {
        Ok(command) => {
            logging::init(log::LevelFilter::Warn);
            cni_main(&command, &binary_name)
        }
        Err(_) => {
            logging::init(log::LevelFilter::Info);
            wasmcni::cli::main(argv, &binary_name)
        }
    };
    std::process::exit(code);
}

fn cni_main(command: &str, binary_name: &str) -> i32 {
    // Read stdin whole: configs can be large, and a partial read would be a confusing decode error.
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        log::error!("cannot read the network config from stdin: {e}");
        stdin.clear();
    }
    let out = dispatch::handle(command, &ProcessEnv, &stdin, binary_name);
    if let Some(v) = out.stdout {
        let mut stdout = std::io::stdout().lock();
        let written = serde_json::to_writer(&mut stdout, &v).map_err(std::io::Error::from);
        if written.and_then(|_| stdout.write_all(b"\n")).and_then(|_| stdout.flush()).is_err() {
            return 1;
        }
    }
    // What a command costs after its last step (sockets closed, threads joined) shows in a debug log.
    log::debug!("step exiting: reply written, everything closed");
    out.exit_code
}
