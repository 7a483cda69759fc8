//! `gateway-bench fixtures`: writes a bench county derived from the repository's own
//! files at run time (limits and quotas off, department capacity off, one config
//! without and one with the record cache, the bench forms), an issuer key pair, a clerk
//! token (an operator's, for `/metrics`, and one for each of the demo's personas, in
//! `personas/`) and the IDs of residents the clerk may look up.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use clap::Args;
use gateway::auth::{MintClaims, Role, SigningKey};
use gateway::config::{self, DiskSource, LoadOptions};
use gateway::demo;
use serde_yaml_ng::{Mapping, Value};
use sim::ResidentStatus;

#[derive(Debug, Args)]
pub(crate) struct FixturesArgs {
    /// The directory to write (created; must be empty if it exists).
    #[arg(long)]
    out: PathBuf,
    /// The repository the county is derived from.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The clerk's township; the IDs are of residents registered there.
    #[arg(long, default_value = "139901101")]
    township: String,
    /// Most subject IDs written to ids.txt.
    #[arg(long, default_value_t = 4000)]
    count: usize,
    /// A connector's department system, e.g. `hukou=http://127.0.0.1:28101`; repeatable.
    #[arg(long = "base-url", value_name = "CONNECTOR=URL", value_parser = parse_pair)]
    base_urls: Vec<(String, String)>,
    /// Record cache lifetime in the cached config, in seconds.
    #[arg(long, default_value_t = 3600)]
    cache_ttl_s: u64,
    /// Lifetime of the clerk's token, in seconds.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    ttl_s: u64,
    /// Seed of the synthetic population (as `gateway simulate --seed`).
    #[arg(long, default_value_t = demo::SEED)]
    seed: u64,
    /// Least number of residents (as `gateway simulate --residents`).
    #[arg(long, default_value_t = demo::RESIDENTS)]
    residents: usize,
}

fn parse_pair(arg: &str) -> Result<(String, String), String> {
    arg.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected CONNECTOR=URL, got `{arg}`"))
}

/// The bench form files, relative to the repository.
const BENCH_FORMS_DIR: &str = "bench/forms";
/// The repository's gateway configuration the bench county is derived from.
const COUNTY_CONFIG: &str = "county/gateway.yaml";
/// Where the personas' tokens are written, one `NAME.jwt` each.
pub(crate) const PERSONAS_DIR: &str = "personas";
/// The two configurations written, and whether each caches records.
const VARIANTS: [(&str, bool); 2] = [("nocache", false), ("cache", true)];

pub(crate) async fn fixtures(args: FixturesArgs) -> Result<(), String> {
    if args
        .out
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
    {
        return Err(format!("{} exists and is not empty", args.out.display()));
    }
    let repo_config = args.repo.join(COUNTY_CONFIG);
    let repo_county = parent(&repo_config);
    let out_county = args.out.join(parent(Path::new(COUNTY_CONFIG)));
    let main = read_yaml(&repo_config)?;
    let main = as_map(&main, &repo_config)?;
    let base_urls: BTreeMap<String, String> = args.base_urls.iter().cloned().collect();

    // Files the main config points to, copied to the same place relative to it.
    let copy = |key: &str, adjust: fn(&mut Value)| -> Result<(), String> {
        for rel in paths_of(main, key) {
            let from = repo_county.join(&rel);
            let to = inside(&out_county, &rel, &args.out)?;
            let mut value = read_yaml(&from)?;
            adjust(&mut value);
            write_yaml(&to, &value, &from)?;
        }
        Ok(())
    };
    copy("purposes", |_| {})?;
    copy("policies", remove_quotas)?;
    copy("forms", |_| {})?;
    copy("calendar", |_| {})?;
    for rel in paths_of(main, "schemas_dir") {
        let from = repo_county.join(&rel);
        copy_dir(&from, &inside(&out_county, &rel, &args.out)?)?;
    }

    // The bench forms, beside the county's.
    let bench_forms = bench_forms(&args.repo)?;
    let forms_rel = paths_of(main, "forms")
        .first()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("forms"));
    let mut bench_form_paths = Vec::new();
    for from in &bench_forms {
        let name = from.file_name().unwrap_or_default();
        let rel = forms_rel.join(name);
        let to = inside(&out_county, &rel, &args.out)?;
        if to.exists() {
            return Err(format!(
                "{}: a county form has the same file name",
                from.display()
            ));
        }
        write_yaml(&to, &read_yaml(from)?, from)?;
        bench_form_paths.push(rel);
    }

    // The issuer: the first one with PEM keys, its first kid.
    let auth = main
        .get("auth")
        .and_then(Value::as_mapping)
        .ok_or("the county config has no auth section")?;
    let audience = auth
        .get("audience")
        .and_then(Value::as_str)
        .unwrap_or(demo::AUDIENCE)
        .to_owned();
    let (issuer, kid) = first_pem_issuer(auth).ok_or("no issuer with a pem key in auth")?;
    let keys_dir = args.out.join("keys");
    let (_, private_pem, public_pem) =
        SigningKey::generate_es256(&kid).map_err(|e| e.to_string())?;
    let private = keys_dir.join(format!("{kid}.pem"));
    let public = keys_dir.join(format!("{kid}.pub.pem"));
    gateway::secrets::write_private(&private, private_pem.as_bytes()).map_err(|e| e.to_string())?;
    write(&public, public_pem.as_bytes())?;
    let key = SigningKey::from_pem(
        private_pem.as_bytes(),
        jsonwebtoken::Algorithm::ES256,
        Some(kid.clone()),
    )
    .map_err(|e| e.to_string())?;
    let token = gateway::auth::mint(
        &key,
        &MintClaims {
            iss: issuer.clone(),
            aud: audience.clone(),
            sub: "bench-clerk".to_owned(),
            roles: vec![Role::Clerk],
            township: Some(args.township.clone()),
            villages: Vec::new(),
            department: None,
            app: None,
            ttl_s: args.ttl_s,
            not_before_s: None,
        },
    )
    .map_err(|e| e.to_string())?;
    write(&args.out.join("token.jwt"), token.as_bytes())?;
    // An operator's, for reading `/metrics` of the gateways under test.
    let operator = gateway::auth::mint(
        &key,
        &MintClaims {
            iss: issuer.clone(),
            aud: audience.clone(),
            sub: "bench-operator".to_owned(),
            roles: vec![Role::Operator],
            township: None,
            villages: Vec::new(),
            department: None,
            app: None,
            ttl_s: args.ttl_s,
            not_before_s: None,
        },
    )
    .map_err(|e| e.to_string())?;
    write(&args.out.join("operator.jwt"), operator.as_bytes())?;
    // One token per demo persona (township lead, department admins, privacy officer,
    // governance, …), for `gateway-bench soak`'s admin and privacy requests.
    for persona in demo::PERSONAS {
        let token = gateway::auth::mint(
            &key,
            &MintClaims {
                iss: issuer.clone(),
                aud: audience.clone(),
                sub: persona.name.to_owned(),
                roles: vec![persona.role],
                township: persona.township.map(str::to_owned),
                villages: persona.villages.iter().map(|v| (*v).to_owned()).collect(),
                department: persona.department.map(str::to_owned),
                app: None,
                ttl_s: args.ttl_s,
                not_before_s: None,
            },
        )
        .map_err(|e| e.to_string())?;
        let path = args
            .out
            .join(PERSONAS_DIR)
            .join(format!("{}.jwt", persona.name));
        write(&path, token.as_bytes())?;
    }

    // Connectors and main config, once per variant.
    let public_rel = relative_to(&out_county, &public);
    for (variant, cached) in VARIANTS {
        let mut connector_paths = Vec::new();
        for rel in paths_of(main, "connectors") {
            let from = repo_county.join(&rel);
            let name = rel.file_name().unwrap_or_default();
            let new_rel = PathBuf::from(format!("connectors-{variant}")).join(name);
            let mut value = read_yaml(&from)?;
            adjust_connector(&mut value, cached, args.cache_ttl_s, &base_urls);
            write_yaml(&out_county.join(&new_rel), &value, &from)?;
            connector_paths.push(new_rel);
        }
        let mut cfg = main.clone();
        allow_upstreams(&mut cfg, &repo_county, main, &base_urls)?;
        set(&mut cfg, "connectors", paths_value(&connector_paths));
        set(&mut cfg, "data_dir", Value::from("data"));
        let mut limits = Mapping::new();
        limits.insert("per_user".into(), "off".into());
        limits.insert("per_township".into(), "off".into());
        set(&mut cfg, "rate_limits", Value::Mapping(limits));
        let mut forms = paths_of(main, "forms");
        forms.extend(bench_form_paths.iter().cloned());
        set(&mut cfg, "forms", paths_value(&forms));
        set(
            &mut cfg,
            "auth",
            auth_section(auth, &audience, &issuer, &kid, &public_rel),
        );
        let path = out_county.join(format!("gateway-{variant}.yaml"));
        write_yaml(&path, &Value::Mapping(cfg), &repo_config)?;
        if let Err(problems) = config::load(&DiskSource, &path, &LoadOptions::default()) {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(format!(
                "the bench config does not load:\n  {}",
                list.join("\n  ")
            ));
        }
    }

    // Residents the clerk may look up: alive and registered in the township.
    let population = demo::population(args.seed, args.residents).await;
    let ids: Vec<&str> = population
        .residents()
        .filter(|p| p.status == ResidentStatus::Normal)
        .filter(|p| {
            population
                .household(&p.household)
                .is_some_and(|h| h.township == args.township)
        })
        .map(|p| p.id.as_str())
        .take(args.count)
        .collect();
    if ids.is_empty() {
        return Err(format!("no resident is registered in {}", args.township));
    }
    let mut text = ids.join("\n");
    text.push('\n');
    write(&args.out.join("ids.txt"), text.as_bytes())?;
    println!(
        "bench county in {}: gateway-nocache.yaml, gateway-cache.yaml, {} bench form(s), token.jwt, operator.jwt, personas/*.jwt, {} ids",
        out_county.display(),
        bench_forms.len(),
        ids.len()
    );
    Ok(())
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn read_yaml(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn as_map<'a>(value: &'a Value, path: &Path) -> Result<&'a Mapping, String> {
    value
        .as_mapping()
        .ok_or_else(|| format!("{}: not a mapping", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_yaml(path: &Path, value: &Value, from: &Path) -> Result<(), String> {
    let text = serde_yaml_ng::to_string(value).map_err(|e| format!("{}: {e}", path.display()))?;
    let header = format!(
        "# Written by `gateway bench fixtures` from {}, adjusted for benchmarking.\n",
        from.display()
    );
    write(path, format!("{header}{text}").as_bytes())
}

/// The path or paths a key of the main config holds.
fn paths_of(main: &Mapping, key: &str) -> Vec<PathBuf> {
    match main.get(key) {
        Some(Value::String(s)) => vec![PathBuf::from(s)],
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(PathBuf::from)
            .collect(),
        _ => Vec::new(),
    }
}

fn paths_value(paths: &[PathBuf]) -> Value {
    Value::Sequence(
        paths
            .iter()
            .map(|p| Value::from(p.to_string_lossy().into_owned()))
            .collect(),
    )
}

fn set(map: &mut Mapping, key: &str, value: Value) {
    map.insert(Value::from(key), value);
}

/// `base.join(rel)`, refused if it would leave `root`.
fn inside(base: &Path, rel: &Path, root: &Path) -> Result<PathBuf, String> {
    let mut out = base.to_path_buf();
    for part in rel.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if out == root || !out.pop() {
                    return Err(format!(
                        "{}: points outside the county's tree",
                        rel.display()
                    ));
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{}: an absolute path", rel.display()));
            }
        }
    }
    if out.starts_with(root) {
        Ok(out)
    } else {
        Err(format!(
            "{}: points outside the county's tree",
            rel.display()
        ))
    }
}

/// `path` relative to `dir`, both under one root (`../keys/x.pem` from `county/`).
fn relative_to(dir: &Path, path: &Path) -> PathBuf {
    let dir: Vec<_> = dir.components().collect();
    let target: Vec<_> = path.components().collect();
    let common = dir.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..dir.len() {
        out.push("..");
    }
    for part in &target[common..] {
        out.push(part);
    }
    out
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", from.display()))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target)?;
        } else {
            std::fs::copy(&path, &target).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

fn bench_forms(repo: &Path) -> Result<Vec<PathBuf>, String> {
    let dir = repo.join(BENCH_FORMS_DIR);
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut forms: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    forms.sort();
    Ok(forms)
}

/// Grants without `quota` (the bench sends thousands of lookups a second).
fn remove_quotas(policy: &mut Value) {
    if let Some(grants) = policy.get_mut("grants").and_then(Value::as_sequence_mut) {
        for grant in grants.iter_mut().filter_map(Value::as_mapping_mut) {
            grant.remove("quota");
        }
    }
}

/// No department capacity limit; the record cache on or off; the bench's department
/// addresses.
/// Lists each simulated system's URL among its department's upstreams, so the bench
/// connectors (pointed there) are the department's own.
fn allow_upstreams(
    cfg: &mut Mapping,
    repo_county: &Path,
    main: &Mapping,
    base_urls: &BTreeMap<String, String>,
) -> Result<(), String> {
    let mut department_of = BTreeMap::new();
    for rel in paths_of(main, "connectors") {
        let from = repo_county.join(&rel);
        let value = read_yaml(&from)?;
        let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
        let department = value
            .get("department")
            .and_then(|d| d.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let (Some(id), Some(department)) = (id, department) {
            department_of.insert(id, department);
        }
    }
    let Some(Value::Sequence(departments)) = cfg.get_mut("departments") else {
        return Err("the county config lists no departments".to_owned());
    };
    for (connector, url) in base_urls {
        let Some(department) = department_of.get(connector) else {
            continue;
        };
        for entry in departments.iter_mut() {
            if entry.get("id").and_then(Value::as_str) != Some(department.as_str()) {
                continue;
            }
            if let Some(Value::Sequence(upstreams)) = entry.get_mut("upstreams") {
                upstreams.push(Value::from(url.as_str()));
            } else if let Value::Mapping(map) = entry {
                map.insert(
                    "upstreams".into(),
                    Value::Sequence(vec![Value::from(url.as_str())]),
                );
            }
        }
    }
    Ok(())
}

fn adjust_connector(
    connector: &mut Value,
    cached: bool,
    ttl_s: u64,
    base_urls: &BTreeMap<String, String>,
) {
    let Some(map) = connector.as_mapping_mut() else {
        return;
    };
    map.remove("capacity");
    let max_mib = map
        .get("cache")
        .and_then(|c| c.get("max_mib"))
        .cloned()
        .unwrap_or(Value::from(64));
    if cached {
        let mut cache = Mapping::new();
        cache.insert("ttl_s".into(), ttl_s.into());
        cache.insert("not_found_ttl_s".into(), ttl_s.into());
        cache.insert("max_mib".into(), max_mib);
        set(map, "cache", Value::Mapping(cache));
    } else {
        map.remove("cache");
    }
    let id = map.get("id").and_then(Value::as_str).map(str::to_owned);
    if let Some(url) = id.and_then(|id| base_urls.get(&id)) {
        set(map, "base_url", Value::from(url.as_str()));
    }
}

fn first_pem_issuer(auth: &Mapping) -> Option<(String, String)> {
    auth.get("issuers")?.as_sequence()?.iter().find_map(|i| {
        let issuer = i.get("issuer")?.as_str()?.to_owned();
        let pem = i.get("keys")?.get("pem")?.as_sequence()?.first()?;
        let kid = pem.get("kid").and_then(Value::as_str).unwrap_or(&issuer);
        Some((issuer.clone(), kid.to_owned()))
    })
}

/// The county's auth section trusting only the bench issuer's key.
fn auth_section(auth: &Mapping, audience: &str, issuer: &str, kid: &str, public: &Path) -> Value {
    let mut out = auth.clone();
    let mut key = Mapping::new();
    key.insert("kid".into(), kid.into());
    key.insert("path".into(), public.to_string_lossy().into_owned().into());
    let mut keys = Mapping::new();
    keys.insert("pem".into(), Value::Sequence(vec![Value::Mapping(key)]));
    let mut one = Mapping::new();
    one.insert("issuer".into(), issuer.into());
    one.insert(
        "algorithms".into(),
        Value::Sequence(vec![Value::from("ES256")]),
    );
    one.insert("keys".into(), Value::Mapping(keys));
    set(&mut out, "audience", Value::from(audience));
    set(
        &mut out,
        "issuers",
        Value::Sequence(vec![Value::Mapping(one)]),
    );
    Value::Mapping(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_tree() {
        let root = Path::new("/out");
        let county = Path::new("/out/county");
        assert_eq!(
            inside(county, Path::new("../policies/a.yaml"), root).ok(),
            Some(PathBuf::from("/out/policies/a.yaml"))
        );
        assert!(inside(county, Path::new("../../etc/x"), root).is_err());
        assert!(inside(county, Path::new("/etc/x"), root).is_err());
        assert_eq!(
            relative_to(county, Path::new("/out/keys/k.pub.pem")),
            PathBuf::from("../keys/k.pub.pem")
        );
    }
}
