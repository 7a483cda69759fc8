//! Connector definition files: the YAML a department admin writes to describe one of
//! its systems — where it is, how to call each operation, and how its answer maps to
//! the canonical record, field by field, with each field's classification.
//!
//! The definition is kind-neutral — the department, the operations, each field's
//! mapping and classification, time limits, cache and capacity — plus the settings of
//! its kind ([`Transport`], [`OperationCall`]): `kind: http` is the only kind so far
//! (see [`crate::http`]). This module owns that model and the checks that need nothing
//! but the file itself; the YAML shape of the file is `file`'s. Checks against other
//! files (the record's JSON Schema, other connectors) belong to the gateway's config
//! loader.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http::{HttpSettings, RequestDef};
use crate::sql::{SelectDef, SqlSettings};

mod file;

/// One connector: a department system the gateway may call. Read from and written as
/// the YAML shape in `definition::file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "file::DefinitionFile", into = "file::DefinitionFile")]
pub struct ConnectorDef {
    /// Stable identifier used in requests and audit records, e.g. `hukou`.
    pub id: String,
    /// Human title, e.g. 户籍人口信息.
    pub title: String,
    pub department: DepartmentRef,
    /// The connector's kind and how it reaches the department's system.
    pub transport: Transport,
    pub timeouts: Timeouts,
    /// How long the gateway may keep this department's validated records in memory
    /// (off unless set; the department decides how fresh its data must be).
    pub cache: CacheDef,
    /// The calls per second the department's system takes through the gateway; calls
    /// beyond it are refused before they reach the department. Unlimited if absent.
    pub capacity: Option<CapacityDef>,
    /// The terms its conditional fields are shared on (有条件共享的依据与方式); the
    /// gateway requires them when any field is conditional and shows them in its
    /// catalog.
    pub sharing_terms: Option<SharingTerms>,
    /// Code tables used by `transform: {code: NAME}`.
    pub code_tables: BTreeMap<String, BTreeMap<String, String>>,
    pub operations: BTreeMap<String, OperationDef>,
}

/// A connector's kind (`kind:` in the file) with the settings of that kind. Each kind
/// is a `Connector` implementation in a folder of its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// `kind: http` (the default): HTTP/JSON, see [`crate::http`].
    Http(HttpSettings),
    /// `kind: sql`: a front database (前置库), see [`crate::sql`].
    Sql(SqlSettings),
}

impl Transport {
    /// The kind's name as the file writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            Transport::Http(_) => "http",
            Transport::Sql(_) => "sql",
        }
    }

    fn problems(&self) -> Vec<DefinitionProblem> {
        match self {
            Transport::Http(settings) => settings.problems(),
            Transport::Sql(settings) => settings.problems(),
        }
    }
}

/// How one operation reaches the department, in the connector's kind.
#[derive(Debug, Clone, PartialEq)]
pub enum OperationCall {
    /// The HTTP request the operation makes.
    Http(RequestDef),
    /// The `SELECT` the operation runs on the front database.
    Sql(SelectDef),
}

impl OperationCall {
    fn problems(&self, at: &str) -> Vec<DefinitionProblem> {
        match self {
            OperationCall::Http(request) => request.problems(at),
            OperationCall::Sql(select) => select.problems(&format!("{at}.select")),
        }
    }
}

/// The legal basis and the method under which a department shares its conditional
/// fields, as the data-sharing regulation asks a catalog to state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharingTerms {
    /// The law, regulation or document that allows the sharing.
    pub legal_basis: String,
    #[serde(default)]
    pub method: SharingMethod,
}

/// How conditional fields are shared. Connector kinds bring their methods; so far
/// every kind answers lookups.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharingMethod {
    /// 接口查询: looked up one subject at a time through the gateway.
    #[default]
    Query,
}

/// The department that owns a connector, by the id the operator gave it. Its name is
/// the operator's too: the gateway fills it in from its own configuration, and a name
/// written here must match it (a connector cannot pose as another department).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentRef {
    #[cfg_attr(feature = "openapi", schema(example = "county-psb"))]
    pub id: String,
    /// The name the county gave the department (absent when it has none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[cfg_attr(feature = "openapi", schema(example = "县公安局"))]
    pub name: String,
}

/// How the gateway authenticates a department's system and itself to it:
///
/// ```yaml
/// tls:
///   ca_bundle: certs/psb-ca.pem        # trust only these roots for this department
///   client_cert: certs/gateway-psb.pem # present this certificate (mTLS)
///   client_key: certs/gateway-psb.key
/// ```
///
/// Relative paths are resolved against the directory of the connector file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsDef {
    /// CA certificates (PEM) to trust instead of the public web roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
    /// The gateway's client certificate chain (PEM), leaf first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// The private key (PEM) of `client_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
}

/// Time limits for one upstream call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub connect_ms: u64,
    pub total_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect_ms: 1_000,
            total_ms: 5_000,
        }
    }
}

impl Timeouts {
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    pub fn total(&self) -> Duration {
        Duration::from_millis(self.total_ms)
    }
}

/// A connector's record cache. `ttl_s: 0` (the default) turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheDef {
    /// How long a fetched record may be served again, in seconds (0 = never).
    pub ttl_s: u64,
    /// How long "no such person" may be remembered, in seconds (0 = never).
    pub not_found_ttl_s: u64,
    /// The most memory the cached records of this connector may take, in MiB.
    pub max_mib: u64,
}

impl Default for CacheDef {
    fn default() -> Self {
        CacheDef {
            ttl_s: 0,
            not_found_ttl_s: 0,
            max_mib: 32,
        }
    }
}

impl CacheDef {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_s)
    }
    pub fn not_found_ttl(&self) -> Duration {
        Duration::from_secs(self.not_found_ttl_s)
    }
}

/// A department's protection limit: calls per second, with bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityDef {
    pub per_second: u32,
    /// Calls allowed at once after a quiet spell; defaults to `per_second`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl CapacityDef {
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.per_second)
    }
}

/// What kind of key an operation looks its subject up by.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKey {
    /// A resident ID number (GB 11643).
    #[default]
    IdNumber,
    /// A household registration number (户号).
    HouseholdNumber,
}

impl SubjectKey {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKey::IdNumber => "id_number",
            SubjectKey::HouseholdNumber => "household_number",
        }
    }
}

/// One operation of a connector, e.g. `person_by_id`. Read from and written as the
/// YAML shape in `definition::file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "file::OperationFile", into = "file::OperationFile")]
pub struct OperationDef {
    pub title: String,
    /// Which subject key the operation takes.
    pub subject: SubjectKey,
    /// How it reaches the department, in the connector's kind.
    pub call: OperationCall,
    /// Path of the canonical record's JSON Schema, relative to the schemas directory.
    pub schema: String,
    /// The canonical record: field name → where it comes from and how it is classified.
    pub record: BTreeMap<String, FieldDef>,
}

/// One canonical field. A leaf has `pii` and `sharing`; a container has `fields` (an
/// object) or `items` (a list of objects) and no classification of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// JSON Pointer into the department's record (or list item), e.g. `/xm`.
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Transform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<PiiKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing: Option<Sharing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, FieldDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<BTreeMap<String, FieldDef>>,
}

/// How a department value becomes a canonical value. Written in YAML as `number`, or
/// as a one-key map: `{date: "%Y%m%d"}`, `{month: "%Y%m"}`, `{code: TABLE}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TransformSpec", into = "TransformSpec")]
pub enum Transform {
    /// A date in the given chrono format (e.g. `%Y%m%d`) → ISO `YYYY-MM-DD`; `""` → null.
    Date(String),
    /// A month in the given format (e.g. `%Y%m`) → `YYYY-MM`; `""` → null.
    Month(String),
    /// A code looked up in the connector's code table of this name; unknown codes fail.
    Code(String),
    /// A number or a numeric string → a JSON number.
    Number,
}

/// The YAML shape of a [`Transform`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum TransformSpec {
    Word(String),
    Map(BTreeMap<String, String>),
}

impl TryFrom<TransformSpec> for Transform {
    type Error = String;

    fn try_from(spec: TransformSpec) -> Result<Self, Self::Error> {
        const EXPECTED: &str =
            "expected `number`, {date: FORMAT}, {month: FORMAT} or {code: TABLE}";
        match spec {
            TransformSpec::Word(w) if w == "number" => Ok(Transform::Number),
            TransformSpec::Map(map) if map.len() == 1 => {
                let Some((kind, arg)) = map.into_iter().next() else {
                    return Err(EXPECTED.to_owned());
                };
                match kind.as_str() {
                    "date" => Ok(Transform::Date(arg)),
                    "month" => Ok(Transform::Month(arg)),
                    "code" => Ok(Transform::Code(arg)),
                    _ => Err(EXPECTED.to_owned()),
                }
            }
            _ => Err(EXPECTED.to_owned()),
        }
    }
}

impl From<Transform> for TransformSpec {
    fn from(t: Transform) -> Self {
        let one = |k: &str, v: String| TransformSpec::Map(BTreeMap::from([(k.to_owned(), v)]));
        match t {
            Transform::Number => TransformSpec::Word("number".to_owned()),
            Transform::Date(f) => one("date", f),
            Transform::Month(f) => one("month", f),
            Transform::Code(t) => one("code", t),
        }
    }
}

/// Sharing type (共享类型) of a field, as 政务数据共享条例 defines them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    /// 无条件共享: any authenticated caller with a known purpose.
    Open,
    /// 有条件共享: only under a grant.
    Conditional,
    /// 不予共享: never leaves the department through the gateway.
    Never,
}

impl Sharing {
    pub fn as_str(self) -> &'static str {
        match self {
            Sharing::Open => "open",
            Sharing::Conditional => "conditional",
            Sharing::Never => "never",
        }
    }
}

/// The kind of personal data a field holds; it picks the field's default mask.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    IdNumber,
    Name,
    Phone,
    Address,
    Date,
    Money,
    Account,
    Health,
    FreeText,
    Code,
    Count,
    /// Not personal by itself (a township code, a scheme name).
    None,
}

/// A leaf field of a record with its dotted path (`children[].name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafField {
    pub path: String,
    pub pii: PiiKind,
    pub sharing: Sharing,
}

/// A problem found in a definition, with the path inside the file where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionProblem {
    pub path: String,
    pub message: String,
}

impl ConnectorDef {
    /// Parses a definition from YAML, naming the path of the first syntax or type error.
    pub fn from_yaml(text: &str) -> Result<ConnectorDef, DefinitionProblem> {
        parse_yaml(text)
    }

    /// Every problem the file has on its own, all at once.
    pub fn validate(&self) -> Vec<DefinitionProblem> {
        let mut problems = Vec::new();
        let mut field_problems = Vec::new();
        let mut problem = |path: &str, message: String| {
            problems.push(DefinitionProblem {
                path: path.to_owned(),
                message,
            })
        };
        if !is_identifier(&self.id) {
            problem(
                "id",
                "must be 1–64 characters of a-z, 0-9, '_' or '-', starting with a letter".into(),
            );
        }
        if !is_identifier(&self.department.id) {
            problem(
                "department.id",
                "must be 1–64 characters of a-z, 0-9, '_' or '-', starting with a letter".into(),
            );
        }
        for p in self.transport.problems() {
            problem(&p.path, p.message);
        }
        if self.timeouts.connect_ms == 0 || self.timeouts.total_ms == 0 {
            problem(
                "timeouts",
                "connect_ms and total_ms must be greater than 0".into(),
            );
        }
        if self.cache.ttl_s > 24 * 3600 {
            problem(
                "cache.ttl_s",
                "must be at most 86400 (a day); records older than that are not fresh".into(),
            );
        }
        if self.cache.not_found_ttl_s > self.cache.ttl_s.max(300) {
            problem(
                "cache.not_found_ttl_s",
                "must be at most ttl_s (or 300): a person registered since must be found".into(),
            );
        }
        if self.cache.max_mib == 0 || self.cache.max_mib > 4096 {
            problem("cache.max_mib", "must be between 1 and 4096".into());
        }
        if let Some(capacity) = &self.capacity {
            if capacity.per_second == 0 {
                problem(
                    "capacity.per_second",
                    "must be at least 1 (remove `capacity` for no limit)".into(),
                );
            }
            if capacity.burst == Some(0) {
                problem("capacity.burst", "must be at least 1".into());
            }
        }
        if self.timeouts.connect_ms > self.timeouts.total_ms {
            problem("timeouts.connect_ms", "must not exceed total_ms".into());
        }
        if self.operations.is_empty() {
            problem("operations", "must define at least one operation".into());
        }
        for (op_name, op) in &self.operations {
            let at = format!("operations.{op_name}");
            if !is_identifier(op_name) {
                problem(&at, "operation names use a-z, 0-9, '_' or '-'".into());
            }
            for p in op.call.problems(&at) {
                problem(&p.path, p.message);
            }
            if op.schema.is_empty() || op.schema.contains("..") || op.schema.starts_with('/') {
                problem(
                    &format!("{at}.schema"),
                    "must be a relative path inside the schemas directory".into(),
                );
            }
            if op.record.is_empty() {
                problem(
                    &format!("{at}.record"),
                    "must map at least one field".into(),
                );
            }
            self.validate_fields(&format!("{at}.record"), &op.record, &mut field_problems);
        }
        problems.extend(field_problems);
        problems
    }

    fn validate_fields(
        &self,
        at: &str,
        fields: &BTreeMap<String, FieldDef>,
        problems: &mut Vec<DefinitionProblem>,
    ) {
        for (name, field) in fields {
            let here = format!("{at}.{name}");
            let mut local = Vec::new();
            let mut problem = |suffix: &str, message: String| {
                local.push(DefinitionProblem {
                    path: format!("{here}{suffix}"),
                    message,
                })
            };
            if !is_field_name(name) {
                problem("", "field names use a-z, 0-9 and '_'".into());
            }
            if !is_pointer(&field.from) {
                problem(".from", "must be a JSON Pointer such as /xm".into());
            }
            let children = match (&field.fields, &field.items) {
                (Some(_), Some(_)) => {
                    problem(
                        "",
                        "a field has either `fields` or `items`, not both".into(),
                    );
                    None
                }
                (Some(c), None) | (None, Some(c)) => Some(c),
                (None, None) => None,
            };
            match children {
                Some(children) => {
                    if field.pii.is_some() || field.sharing.is_some() || field.transform.is_some() {
                        problem(
                            "",
                            "a container field is classified through its own fields; remove pii, sharing and transform".into(),
                        );
                    }
                    if children.is_empty() {
                        problem("", "a container field needs at least one field".into());
                    }
                    let suffix = if field.items.is_some() {
                        "items"
                    } else {
                        "fields"
                    };
                    problems.append(&mut local);
                    self.validate_fields(&format!("{here}.{suffix}"), children, problems);
                }
                None => {
                    if field.pii.is_none() {
                        problem(".pii", "every field needs a pii kind".into());
                    }
                    if field.sharing.is_none() {
                        problem(
                            ".sharing",
                            "every field needs a sharing type: open, conditional or never".into(),
                        );
                    }
                    if let Some(Transform::Code(table)) = &field.transform
                        && !self.code_tables.contains_key(table)
                    {
                        problem(
                            ".transform.code",
                            format!("no code table named `{table}` in code_tables"),
                        );
                    }
                    if let Some(Transform::Date(fmt) | Transform::Month(fmt)) = &field.transform
                        && !is_date_format(fmt)
                    {
                        problem(
                            ".transform",
                            "date formats may use only %Y, %m, %d and separators".into(),
                        );
                    }
                }
            }
            problems.append(&mut local);
        }
    }

    /// Every leaf field of an operation's record with its dotted path.
    pub fn leaf_fields(op: &OperationDef) -> Vec<LeafField> {
        ConnectorDef::leaf_defs(op)
            .into_iter()
            .filter_map(|(path, field)| {
                Some(LeafField {
                    path,
                    pii: field.pii?,
                    sharing: field.sharing?,
                })
            })
            .collect()
    }

    /// Every leaf field's definition with its path (`children[].name`), in record
    /// order.
    pub fn leaf_defs(op: &OperationDef) -> Vec<(String, &FieldDef)> {
        let mut out = Vec::new();
        collect_leaves("", &op.record, &mut out);
        out
    }
}

/// Parses any YAML document, naming the path of the first syntax or type error.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, DefinitionProblem> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = e.into_inner().to_string();
        // The YAML error may start with the path itself; say it once.
        let message = message
            .strip_prefix(&format!("{path}: "))
            .map(str::to_owned)
            .unwrap_or(message);
        DefinitionProblem { path, message }
    })
}

fn collect_leaves<'a>(
    prefix: &str,
    fields: &'a BTreeMap<String, FieldDef>,
    out: &mut Vec<(String, &'a FieldDef)>,
) {
    for (name, field) in fields {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let Some(children) = &field.fields {
            collect_leaves(&path, children, out);
        } else if let Some(children) = &field.items {
            collect_leaves(&format!("{path}[]"), children, out);
        } else {
            out.push((path, field));
        }
    }
}

/// Whether `s` is an id: 1–64 characters of a-z, 0-9, `_` or `-`, starting with a letter.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn is_field_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether `s` is a JSON Pointer (or empty, the whole value).
pub(crate) fn is_pointer(s: &str) -> bool {
    s.is_empty() || s.starts_with('/')
}

fn is_date_format(fmt: &str) -> bool {
    let mut chars = fmt.chars();
    let mut has_year = false;
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('Y') => has_year = true,
                Some('m' | 'd') => {}
                _ => return false,
            }
        } else if c.is_alphanumeric() {
            return false;
        }
    }
    has_year
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The HTTP settings of a definition.
    fn http(def: &ConnectorDef) -> &HttpSettings {
        let Transport::Http(settings) = &def.transport else {
            panic!("an HTTP definition");
        };
        settings
    }

    /// A small valid definition, for other modules' tests too.
    pub(crate) const MINIMAL: &str = r#"
id: demo
title: 示例
department: { id: dept, name: 示例部门 }
base_url: http://127.0.0.1:1
envelope: { status: /code, ok: [0], not_found: [404], data: /data }
code_tables: { gender: { "1": male, "2": female } }
operations:
  person_by_id:
    title: 按身份证号查询
    request: { path: /person, body: { sfzh: "$subject" } }
    schema: demo/person.schema.json
    record:
      id_number: { from: /sfzh, pii: id_number, sharing: open }
      gender: { from: /xb, transform: { code: gender }, pii: code, sharing: open }
      children:
        from: /zn
        items:
          name: { from: /xm, pii: name, sharing: conditional }
"#;

    #[test]
    fn a_minimal_definition_parses_and_is_valid() {
        let def = ConnectorDef::from_yaml(MINIMAL).unwrap();
        assert_eq!(def.validate(), vec![]);
        let op = &def.operations["person_by_id"];
        let leaves: Vec<_> = ConnectorDef::leaf_fields(op)
            .into_iter()
            .map(|l| l.path)
            .collect();
        assert_eq!(leaves, ["children[].name", "gender", "id_number"]);
    }

    #[test]
    fn a_type_error_names_its_path() {
        let text = MINIMAL.replace("sharing: conditional", "sharing: sometimes");
        let err = ConnectorDef::from_yaml(&text).unwrap_err();
        assert_eq!(
            err.path,
            "operations.person_by_id.record.children.items.name.sharing"
        );
    }

    #[test]
    fn the_kind_defaults_to_http_and_an_unknown_kind_is_refused() {
        let explicit = MINIMAL.replace("base_url:", "kind: http\nbase_url:");
        assert_eq!(
            ConnectorDef::from_yaml(&explicit).unwrap(),
            ConnectorDef::from_yaml(MINIMAL).unwrap()
        );
        let unknown = MINIMAL.replace("base_url:", "kind: soap\nbase_url:");
        assert_eq!(ConnectorDef::from_yaml(&unknown).unwrap_err().path, "kind");
        // `kind: sql` takes a front database, not an HTTP system's settings.
        let sql = MINIMAL.replace("base_url:", "kind: sql\nbase_url:");
        let refused = ConnectorDef::from_yaml(&sql).unwrap_err();
        assert!(
            refused.message.contains("`kind: sql` takes `database`"),
            "{refused:?}"
        );
    }

    #[test]
    fn validation_reports_every_problem() {
        let text = MINIMAL
            .replace("base_url: http://127.0.0.1:1", "base_url: ftp://x")
            .replace("path: /person", "path: /person?id=$subject")
            .replace("{ code: gender }", "{ code: sex }")
            .replace("pii: name, sharing: conditional", "pii: name");
        let def = ConnectorDef::from_yaml(&text).unwrap();
        let paths: Vec<_> = def.validate().into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "base_url",
                "operations.person_by_id.request.path",
                "operations.person_by_id.record.children.items.name.sharing",
                "operations.person_by_id.record.gender.transform.code",
            ]
        );
    }

    #[test]
    fn a_tls_section_parses() {
        let text = MINIMAL.replace("http://127.0.0.1:1", "https://10.1.2.3:8443")
            + "tls: { ca_bundle: certs/psb-ca.pem, client_cert: certs/gw.pem, client_key: certs/gw.key }\n";
        let def = ConnectorDef::from_yaml(&text).unwrap();
        assert_eq!(def.validate(), vec![]);
        assert_eq!(
            http(&def).tls,
            Some(ClientTlsDef {
                ca_bundle: Some("certs/psb-ca.pem".into()),
                client_cert: Some("certs/gw.pem".into()),
                client_key: Some("certs/gw.key".into()),
            })
        );
        assert_eq!(http(&ConnectorDef::from_yaml(MINIMAL).unwrap()).tls, None);

        let text = MINIMAL.replace("http://127.0.0.1:1", "https://10.1.2.3:8443")
            + "tls: { ca_bundle: a.pem, password: x }\n";
        let err = ConnectorDef::from_yaml(&text).unwrap_err();
        assert!(err.path.starts_with("tls"), "{err:?}");
        assert!(err.message.contains("password"), "{err:?}");
    }

    #[test]
    fn tls_problems_are_reported_together() {
        let problems = |base_url: &str, tls: &str| -> Vec<String> {
            let text = MINIMAL.replace("http://127.0.0.1:1", base_url) + "tls: " + tls + "\n";
            let def = ConnectorDef::from_yaml(&text).unwrap();
            def.validate().into_iter().map(|p| p.path).collect()
        };
        assert_eq!(
            problems(
                "http://10.1.2.3",
                "{ ca_bundle: ca.pem, client_cert: gw.pem }"
            ),
            ["tls", "tls.client_key"]
        );
        assert_eq!(
            problems("https://10.1.2.3", "{ client_key: gw.key }"),
            ["tls.client_cert"]
        );
        assert_eq!(
            problems("https://10.1.2.3", "{ ca_bundle: '' }"),
            ["tls.ca_bundle"]
        );
        assert_eq!(
            problems("https://10.1.2.3", "{ ca_bundle: ca.pem }"),
            Vec::<String>::new()
        );
        // An invalid base_url is one problem, not two.
        assert_eq!(problems("ftp://x", "{ ca_bundle: ca.pem }"), ["base_url"]);
    }

    #[test]
    fn the_subject_may_not_ride_in_a_get() {
        let text = MINIMAL.replace("request: { path", "request: { method: GET, path");
        let def = ConnectorDef::from_yaml(&text).unwrap();
        let problems = def.validate();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "operations.person_by_id.request.method");
    }
}
