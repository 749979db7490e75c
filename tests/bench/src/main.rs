//! `signet-cluster-bench <scenario>`: Signet's controllers in this process
//! against the test environment's real kube-apiserver and local-kms
//! (`make testenv`), measuring what BENCHMARKS.md reports.
//!
//! * `crl [--entries N]` — sign and publish the CRL of a CA holding N
//!   revocations (default 100,000): time from the CRL object's creation to
//!   Ready, and the peak memory the process needed for it.
#![forbid(unsafe_code)]

mod crl;
mod util;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("crl") => rt.block_on(crl::run(&args[1..])),
        _ => {
            eprintln!("usage: signet-cluster-bench crl [--entries N]");
            std::process::exit(2);
        }
    }
}
