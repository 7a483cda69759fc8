//! The data catalog (共享目录, `GET /v1/catalog`): what every connector can share and on
//! what terms — its department, operations and every field with its title, `pii` kind,
//! sharing type and, for conditional fields, the legal basis and method — and the
//! purposes grants are made for, and every code table with its zh-CN and en labels
//! (`code_tables`; a coded field names its table in `code_table`). Never data: any authenticated caller may read it, so
//! a township knows what to ask for.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use connectors::definition::Sharing;
use serde_json::{Value, json};

use super::Authenticated;
use crate::app::App;
use crate::config::ActiveConfig;

pub(crate) fn routes() -> Router<App> {
    Router::new().route("/v1/catalog", get(catalog))
}

async fn catalog(State(app): State<App>, Authenticated(_caller): Authenticated) -> Response {
    axum::Json(describe(&app.config.load_full())).into_response()
}

/// The catalog of a configuration; its disabled connectors are listed as such.
pub fn describe(config: &ActiveConfig) -> Value {
    let connectors: Vec<Value> = config
        .connectors
        .values()
        .map(|c| {
            let def = &c.def;
            let terms = def.sharing_terms.as_ref();
            let operations: Vec<Value> = def
                .operations
                .iter()
                .map(|(name, op)| {
                    let fields: Vec<Value> = connectors::ConnectorDef::leaf_defs(op)
                        .into_iter()
                        .map(|(path, f)| {
                            let sharing = f.sharing.unwrap_or(Sharing::Never);
                            let mut field = json!({
                                "path": path,
                                "title": f.title,
                                "pii": f.pii,
                                "sharing": sharing.as_str(),
                            });
                            if let Some(table) = crate::labels::table_of(&path)
                                && f.pii == Some(connectors::definition::PiiKind::Code)
                            {
                                field["code_table"] = json!(table);
                            }
                            if sharing == Sharing::Conditional
                                && let Some(terms) = terms
                            {
                                field["legal_basis"] = json!(terms.legal_basis);
                                field["method"] = json!(terms.method);
                            }
                            field
                        })
                        .collect();
                    json!({
                        "name": name,
                        "title": op.title,
                        "subject": op.subject,
                        "fields": fields,
                    })
                })
                .collect();
            json!({
                "id": def.id,
                "title": def.title,
                "department": def.department,
                "enabled": true,
                "version": c.digest,
                "operations": operations,
            })
        })
        .chain(
            config
                .disabled
                .keys()
                .map(|id| json!({ "id": id, "enabled": false })),
        )
        .collect();
    let purposes: Vec<Value> = config
        .purposes
        .iter()
        .map(|p| json!({ "code": p.code, "name": p.name, "name_en": p.name_en, "legal_basis": p.legal_basis }))
        .collect();
    json!({
        "county": config.county,
        "config_version": config.version,
        "connectors": connectors,
        "purposes": purposes,
        "code_tables": crate::labels::catalog(),
    })
}
