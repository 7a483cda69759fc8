//! The data catalog (共享目录): what every connector in force can share and on what
//! terms — its department, operations and every field with its title, `pii` kind,
//! sharing type, default mask and, for conditional fields, the legal basis and
//! method — the purposes grants are made for, and every code table with its zh-CN
//! and en labels. Never data: every signed-in person may read it, so a township knows
//! what to ask for. The API serves it as JSON (`GET /v1/catalog`), the console as a
//! searchable page; both read [`describe`].

use connectors::definition::{PiiKind, Sharing};
use serde::Serialize;

use crate::config::ActiveConfig;
use crate::mask::Mask;

/// The catalog of a configuration.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Catalog {
    /// The county: `{code, name}`.
    #[schema(example = json!({"code": "139901", "name": "示范县"}))]
    pub county: serde_json::Value,
    pub config_version: String,
    pub connectors: Vec<Connector>,
    pub purposes: Vec<Purpose>,
    /// Every code table with its labels: `{table: {code: {"zh-CN": …, "en": …}}}`
    /// (`reasons` is the gateway's own).
    #[schema(value_type = Object)]
    pub code_tables: serde_json::Value,
}

/// A connector as the catalog lists it; a disabled one has only its id.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = CatalogConnector)]
pub struct Connector {
    #[schema(example = "hukou")]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "户籍人口信息")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<connectors::definition::DepartmentRef>)]
    pub department: Option<connectors::definition::DepartmentRef>,
    pub enabled: bool,
    /// The digest of the definition in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<Operation>,
}

/// An operation and the fields it answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = CatalogOperation)]
pub struct Operation {
    #[schema(example = "person_by_id")]
    pub name: String,
    pub title: String,
    #[schema(value_type = connectors::definition::SubjectKey)]
    pub subject: connectors::definition::SubjectKey,
    pub fields: Vec<Field>,
    /// Per purpose, the conditional fields some grant lets be verified (核验, `POST
    /// /v1/verify`): granted for reading, or at level `verify` only. Open fields can
    /// always be verified; `never` fields never.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schema(example = json!({"elderly_allowance": ["address", "birth_date", "name"]}))]
    pub verifiable: std::collections::BTreeMap<String, Vec<String>>,
}

/// A field: what it is and on what terms it is shared.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = CatalogField)]
pub struct Field {
    /// Dotted path, e.g. `children[].name`.
    #[schema(example = "birth_date")]
    pub path: String,
    #[schema(required = true)]
    pub title: Option<String>,
    #[schema(required = true, value_type = Option<connectors::definition::PiiKind>)]
    pub pii: Option<PiiKind>,
    /// `open` (无条件), `conditional` (有条件) or `never` (不予共享).
    #[schema(value_type = connectors::definition::Sharing)]
    pub sharing: &'static str,
    /// The mask a grant gives the field when it names none.
    #[schema(example = "keep")]
    pub default_mask: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub code_table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub legal_basis: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = connectors::definition::SharingMethod)]
    pub method: Option<connectors::definition::SharingMethod>,
}

/// A purpose (事项) grants are made for.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = CatalogPurpose)]
pub struct Purpose {
    pub code: String,
    pub name: String,
    pub name_en: String,
    pub legal_basis: String,
}

/// The fields of one operation of a connector definition, as the catalog lists them.
pub fn fields(
    def: &connectors::ConnectorDef,
    op: &connectors::definition::OperationDef,
) -> Vec<Field> {
    let terms = def.sharing_terms.as_ref();
    connectors::ConnectorDef::leaf_defs(op)
        .into_iter()
        .map(|(path, f)| {
            let sharing = f.sharing.unwrap_or(Sharing::Never);
            let code_table = crate::labels::table_of(&path)
                .filter(|_| f.pii == Some(PiiKind::Code))
                .map(str::to_owned);
            let conditional = (sharing == Sharing::Conditional).then_some(terms).flatten();
            Field {
                title: f.title.clone(),
                pii: f.pii,
                sharing: sharing.as_str(),
                default_mask: Mask::default_for(f.pii.unwrap_or(PiiKind::None)).operator(),
                code_table,
                legal_basis: conditional.map(|t| t.legal_basis.clone()),
                method: conditional.map(|t| t.method),
                path,
            }
        })
        .collect()
}

/// Per purpose, the fields of `connector`'s `operation` that a grant lets be
/// verified (read or `verify`), outside lists.
fn verifiable(
    config: &ActiveConfig,
    connector: &str,
    operation: &str,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    let grants = config
        .policies
        .grants()
        .iter()
        .filter(|g| g.connector == connector && g.operations.iter().any(|o| o == operation));
    for grant in grants {
        let fields = grant
            .fields
            .keys()
            .chain(&grant.verify)
            .filter(|f| !f.contains("[]"));
        for purpose in &grant.purposes {
            out.entry(purpose.clone())
                .or_default()
                .extend(fields.clone().cloned());
        }
    }
    out.into_iter()
        .map(|(purpose, fields)| (purpose, fields.into_iter().collect()))
        .collect()
}

/// The catalog of a configuration; its disabled connectors are listed as such.
pub fn describe(config: &ActiveConfig) -> Catalog {
    let connectors = config
        .connectors
        .values()
        .map(|c| {
            let def = &c.def;
            Connector {
                id: def.id.clone(),
                title: Some(def.title.clone()),
                department: Some(def.department.clone()),
                enabled: true,
                version: Some(c.digest.clone()),
                operations: def
                    .operations
                    .iter()
                    .map(|(name, op)| Operation {
                        name: name.clone(),
                        title: op.title.clone(),
                        subject: op.subject,
                        fields: fields(def, op),
                        verifiable: verifiable(config, &def.id, name),
                    })
                    .collect(),
            }
        })
        .chain(config.disabled.keys().map(|id| Connector {
            id: id.clone(),
            title: None,
            department: None,
            enabled: false,
            version: None,
            operations: Vec::new(),
        }))
        .collect();
    let purposes = config
        .purposes
        .iter()
        .map(|p| Purpose {
            code: p.code.clone(),
            name: p.name.clone(),
            name_en: p.name_en.clone(),
            legal_basis: p.legal_basis.clone(),
        })
        .collect();
    Catalog {
        county: serde_json::to_value(&config.county).unwrap_or_default(),
        config_version: config.version.clone(),
        connectors,
        purposes,
        code_tables: crate::labels::catalog(),
    }
}

/// A pii kind's code as configuration writes it (`id_number`, `name`, …).
pub fn pii_code(kind: PiiKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
