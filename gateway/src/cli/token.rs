//! `gateway token`: an issuer key pair, and signed tokens for demos and tests.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line talks to its user on stdout and stderr"
)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::auth::{MintClaims, Role, SigningKey};
use crate::demo;

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
    /// Create an ES256 key pair: DIR/KID.pem (private, mode 0600) and DIR/KID.pub.pem.
    Keygen {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = demo::ISSUER)]
        kid: String,
    },
    /// Sign a token with a private key (PEM).
    Mint(MintArgs),
}

#[derive(Debug, Args)]
pub(super) struct MintArgs {
    /// The private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// Its algorithm.
    #[arg(long, default_value = "ES256", value_parser = parse_alg)]
    alg: jsonwebtoken::Algorithm,
    #[arg(long, default_value = demo::ISSUER)]
    kid: String,
    #[arg(long, default_value = demo::ISSUER)]
    iss: String,
    #[arg(long, default_value = demo::AUDIENCE)]
    aud: String,
    /// The user id.
    #[arg(long)]
    sub: String,
    /// A role (repeatable): clerk, grid_worker, township_lead, dept_admin, privacy_officer, operator.
    #[arg(long = "role", required = true, value_parser = parse_role)]
    roles: Vec<Role>,
    #[arg(long)]
    township: Option<String>,
    #[arg(long)]
    department: Option<String>,
    #[arg(long)]
    app: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl_s: u64,
}

fn parse_alg(s: &str) -> Result<jsonwebtoken::Algorithm, String> {
    s.parse()
        .map_err(|_| format!("unknown algorithm `{s}`; use ES256, RS256 or EdDSA"))
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        format!("unknown role `{s}`; use clerk, grid_worker, township_lead, dept_admin, privacy_officer or operator")
    })
}

pub(super) fn run_keygen(out: &Path, kid: &str) -> ExitCode {
    let private = out.join(format!("{kid}.pem"));
    let public = out.join(format!("{kid}.pub.pem"));
    let made = SigningKey::generate_es256(kid)
        .map_err(|e| e.to_string())
        .and_then(|(_, private_pem, public_pem)| {
            crate::secrets::write_private(&private, private_pem.as_bytes())
                .map_err(|e| e.to_string())?;
            std::fs::write(&public, public_pem).map_err(|e| format!("{}: {e}", public.display()))
        });
    match made {
        Ok(()) => {
            println!(
                "private key {}\npublic key  {}",
                private.display(),
                public.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(super) fn run_mint(args: MintArgs) -> ExitCode {
    let minted = std::fs::read(&args.key)
        .map_err(|e| format!("{}: {e}", args.key.display()))
        .and_then(|pem| {
            SigningKey::from_pem(&pem, args.alg, Some(args.kid.clone())).map_err(|e| e.to_string())
        })
        .and_then(|key| {
            let claims = MintClaims {
                iss: args.iss,
                aud: args.aud,
                sub: args.sub,
                roles: args.roles,
                township: args.township,
                department: args.department,
                app: args.app,
                ttl_s: args.ttl_s,
                not_before_s: None,
            };
            crate::auth::mint(&key, &claims).map_err(|e| e.to_string())
        });
    match minted {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
