#![forbid(unsafe_code)]
//! The `signet` binary: parse arguments, set up tracing, hand off.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use signet::store::cli::{AuditArgs, CertsArgs, DbArgs};

/// Signet: a Kubernetes-native private CA whose keys never leave AWS KMS.
#[derive(Parser, Debug)]
#[command(name = "signet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator (controllers + HTTP server).
    Run(Box<signet::run::RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crds {
        /// Write one file per CRD into this folder instead of printing.
        #[arg(long)]
        split: Option<PathBuf>,
        /// With --split: also write the admission policy file.
        #[arg(long)]
        with_policies: bool,
        /// Print the Markdown field reference (README) instead.
        #[arg(long)]
        reference: bool,
    },
    /// Revoke a Certificate: `signet revoke <namespace>/<name> --reason R`
    /// (or `certificaterequest/<namespace>/<name>` for cert-manager's).
    Revoke(signet::controller::cli::RevokeArgs),
    /// Query the audit trail (reads the database file directly).
    Audit(AuditArgs),
    /// List issued certificates from the mirror database.
    Certs(CertsArgs),
    /// Database maintenance.
    Db(DbArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => signet::run::run_blocking(*args),
        Command::Crds {
            split,
            reference,
            with_policies,
        } => {
            if reference {
                print!("{}", signet::api::reference_markdown());
                Ok(())
            } else {
                crds(split, with_policies)
            }
        }
        Command::Revoke(args) => signet::controller::cli::revoke_blocking(args),
        Command::Audit(args) => {
            signet::controller::anchor::run_audit(&args, &mut std::io::stdout())
        }
        Command::Certs(args) => {
            signet::store::cli::run_certs(&args, &mut std::io::stdout()).map_err(Into::into)
        }
        Command::Db(args) => {
            signet::store::cli::run_db(&args, &mut std::io::stdout()).map_err(Into::into)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "signet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn crds(split: Option<PathBuf>, with_policies: bool) -> anyhow::Result<()> {
    match split {
        None => {
            print!("{}", signet::api::crds_yaml()?);
            let (_, policy) = signet::api::admission_policy_file()?;
            print!(
                "---\n{}",
                policy.lines().skip(1).collect::<Vec<_>>().join("\n")
            );
            println!();
            Ok(())
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            let mut files = signet::api::crd_files()?;
            if with_policies {
                files.push(signet::api::admission_policy_file()?);
            }
            for (file, yaml) in files {
                std::fs::write(dir.join(file), yaml)?;
            }
            Ok(())
        }
    }
}
