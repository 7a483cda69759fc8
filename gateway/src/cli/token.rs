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
    Mint(Box<MintArgs>),
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
    /// The caller's township: 9 digits under `--county`; required for township roles
    /// (clerk, grid_worker, township_lead).
    #[arg(long)]
    township: Option<String>,
    /// A village the caller serves (repeatable): 12 digits under `--township`;
    /// required for grid_worker, at most 64.
    #[arg(long = "village")]
    villages: Vec<String>,
    /// The county the township belongs to (its 6-digit code).
    #[arg(long, default_value = DEMO_COUNTY)]
    county: String,
    /// The caller's department; required for dept_admin.
    #[arg(long)]
    department: Option<String>,
    #[arg(long)]
    app: Option<String>,
    /// Lifetime in seconds: 1 to 86400 (24 hours).
    #[arg(long, default_value_t = 3600)]
    ttl_s: u64,
}

/// The demo county's code, the default `--county`.
const DEMO_COUNTY: &str = "139901";

/// The longest lifetime `mint` signs: a working day and its night, no more.
pub(super) const MAX_TTL_S: u64 = 24 * 3600;

/// What the gateway would refuse in a token, said before it is signed: a township
/// role without a township, a township not 9 digits under the county, villages not
/// 12 digits under the township (or more than 64), a grid worker without villages, a
/// department role without a department, a lifetime of 0 or over [`MAX_TTL_S`].
fn check_mint(args: &MintArgs) -> Result<(), String> {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(&args.county, 6) {
        return Err("--county must be a 6-digit county code".to_owned());
    }
    if let Some(township) = &args.township
        && !(digits(township, 9) && township.starts_with(args.county.as_str()))
    {
        return Err(format!(
            "--township must be a 9-digit township code under the county {} (e.g. {}101)",
            args.county, args.county
        ));
    }
    if let Err(problem) = crate::auth::check_villages(args.township.as_deref(), &args.villages) {
        return Err(format!(
            "--village: {problem} (e.g. {}201 under --township {})",
            args.township.as_deref().unwrap_or("139901101"),
            args.township.as_deref().unwrap_or("139901101")
        ));
    }
    for role in &args.roles {
        if role.needs_township() && args.township.is_none() {
            return Err(format!(
                "the role {role} acts for a township: give --township (9 digits under the county {})",
                args.county
            ));
        }
        if role.needs_department() && args.department.is_none() {
            return Err(format!(
                "the role {role} acts for a department: give --department"
            ));
        }
        if role.needs_villages() && args.villages.is_empty() {
            return Err(format!(
                "the role {role} acts for villages: give --village (12 digits under --township), once per village"
            ));
        }
    }
    if args.ttl_s == 0 || args.ttl_s > MAX_TTL_S {
        return Err(format!(
            "--ttl-s must be between 1 and {MAX_TTL_S} seconds (24 hours)"
        ));
    }
    Ok(())
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
    if let Err(e) = check_mint(&args) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
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
                villages: args.villages,
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

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        mint: MintArgs,
    }

    fn args(extra: &[&str]) -> MintArgs {
        let base = ["mint", "--key", "k.pem", "--sub", "li"];
        Cli::try_parse_from(base.iter().chain(extra)).unwrap().mint
    }

    #[test]
    fn tokens_the_gateway_would_refuse_are_not_minted() {
        let refused = [
            &["--role", "clerk"][..],
            &["--role", "grid_worker"],
            &["--role", "grid_worker", "--township", "139901101"],
            &[
                "--role",
                "grid_worker",
                "--township",
                "139901101",
                "--village",
                "13990110120",
            ],
            &[
                "--role",
                "grid_worker",
                "--township",
                "139901101",
                "--village",
                "139901201201",
            ],
            &["--role", "operator", "--village", "139901101201"],
            &["--role", "township_lead", "--township", "13990110"],
            &["--role", "clerk", "--township", "1399011011"],
            &["--role", "clerk", "--township", "33010610a"],
            &["--role", "clerk", "--township", "330106101"],
            &["--role", "dept_admin"],
            &["--role", "clerk", "--township", "139901101", "--ttl-s", "0"],
            &[
                "--role",
                "clerk",
                "--township",
                "139901101",
                "--ttl-s",
                "86401",
            ],
            &["--role", "operator", "--county", "1399"],
        ];
        for extra in refused {
            assert!(check_mint(&args(extra)).is_err(), "{extra:?}");
        }
        let message = check_mint(&args(&["--role", "clerk"])).unwrap_err();
        assert!(message.contains("--township"), "{message}");
        let message = check_mint(&args(&[
            "--role",
            "clerk",
            "--township",
            "139901101",
            "--ttl-s",
            "90000",
        ]))
        .unwrap_err();
        assert!(message.contains("86400"), "{message}");
        let message =
            check_mint(&args(&["--role", "grid_worker", "--township", "139901101"])).unwrap_err();
        assert!(message.contains("--village"), "{message}");
        let message = check_mint(&args(&[
            "--role",
            "grid_worker",
            "--township",
            "139901101",
            "--village",
            "139901201201",
        ]))
        .unwrap_err();
        assert!(message.contains("lie in the township"), "{message}");

        let accepted = [
            &["--role", "clerk", "--township", "139901101"][..],
            &[
                "--role",
                "clerk",
                "--township",
                "330106101",
                "--county",
                "330106",
            ],
            &["--role", "operator"],
            &["--role", "privacy_officer", "--ttl-s", "86400"],
            &["--role", "dept_admin", "--department", "county-psb"],
            &[
                "--role",
                "grid_worker",
                "--township",
                "139901101",
                "--village",
                "139901101201",
                "--village",
                "139901101202",
            ],
        ];
        for extra in accepted {
            assert_eq!(check_mint(&args(extra)), Ok(()), "{extra:?}");
        }
    }
}
