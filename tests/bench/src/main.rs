//! `signet-cluster-bench <scenario>`: Signet's controllers in this process
//! against the test environment's real kube-apiserver and local-kms
//! (`make testenv`), measuring what BENCHMARKS.md reports.
//!
//! * `crl [--entries N]` — sign and publish the CRL of a CA holding N
//!   revocations (default 100,000): time from the CRL object's creation to
//!   Ready, and the peak memory the process needed for it.
//! * `issue [--count N] [--mode backlog|live] [--rate R] [--key p256|rsa2048]
//!   [--concurrency C] [--idle SECS]` — N leaf Certificates from one CA:
//!   time until all are Ready, create→Ready latency, API requests, KMS Sign
//!   calls, CPU and memory per certificate, and an idle window (see issue.rs).
//! * `ocsp [--serials N] [--clients C] [--seconds S]` — OCSP answers per
//!   second from the responder's cache over keep-alive connections.
#![forbid(unsafe_code)]

mod crl;
mod issue;
mod ocsp;
mod util;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("crl") => rt.block_on(crl::run(&args[1..])),
        Some("issue") => rt.block_on(issue::run(&args[1..])),
        Some("ocsp") => rt.block_on(ocsp::run(&args[1..])),
        _ => {
            eprintln!(
                "usage: signet-cluster-bench crl [--entries N]\n       \
                 signet-cluster-bench issue [--count N] [--mode backlog|live] [--rate R] \
                 [--key p256|rsa2048] [--concurrency C] [--idle SECS]\n       \
                 signet-cluster-bench ocsp [--serials N] [--clients C] [--seconds S]"
            );
            std::process::exit(2);
        }
    }
}
