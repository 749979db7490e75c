//! `signet-testenv serve --state DIR [--node]`: a long-lived control plane
//! (with a node) for humans, driven by `hack/testenv.sh up [--node]|down`.
#![forbid(unsafe_code)]

use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let state = match args.get(1).map(String::as_str) {
        Some("serve") => match (args.get(2).map(String::as_str), args.get(3)) {
            (Some("--state"), Some(dir)) => PathBuf::from(dir),
            _ => usage(),
        },
        _ => usage(),
    };
    let with_node = match args.get(4).map(String::as_str) {
        None => false,
        Some("--node") => true,
        Some(_) => usage(),
    };
    if let Err(e) = std::fs::create_dir_all(&state) {
        eprintln!("signet-testenv: creating {}: {e}", state.display());
        std::process::exit(1);
    }
    if let Err(e) = signet_testenv::serve(&state, with_node) {
        eprintln!("signet-testenv: {e:#}");
        std::process::exit(1);
    }
}

fn usage() -> ! {
    eprintln!("usage: signet-testenv serve --state DIR [--node]");
    std::process::exit(2);
}
