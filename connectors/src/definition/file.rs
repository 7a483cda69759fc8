//! The YAML shape of a connector definition file, as department admins write it: the
//! kind (`kind: http`, the default when absent) and its settings sit beside the
//! kind-neutral keys (`base_url` and `envelope` for HTTP, `database` for SQL), and
//! each operation's `request` (HTTP) or `select` (SQL) beside its record. This module
//! owns that shape and its conversion to and from [`ConnectorDef`]; unknown keys are
//! refused, at any depth.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    CacheDef, CapacityDef, ClientTlsDef, ConnectorDef, DepartmentRef, FieldDef, OperationCall,
    OperationDef, SharingTerms, SubjectKey, Timeouts, Transport,
};
use crate::http::{Envelope, HttpSettings, RequestDef, default_max_response_bytes};
use crate::sql::{SelectDef, SqlSettings};

/// A connector definition file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DefinitionFile {
    id: String,
    title: String,
    department: DepartmentRef,
    #[serde(default)]
    kind: Kind,
    /// `kind: http`: where the department's system is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_url: Option<String>,
    /// `kind: sql`: the department's front database, by the operator's name for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    database: Option<String>,
    #[serde(default)]
    timeouts: Timeouts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_response_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls: Option<ClientTlsDef>,
    #[serde(default)]
    cache: CacheDef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    capacity: Option<CapacityDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    envelope: Option<Envelope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sharing_terms: Option<SharingTerms>,
    #[serde(default)]
    code_tables: BTreeMap<String, BTreeMap<String, String>>,
    operations: BTreeMap<String, OperationDef>,
}

/// The `kind:` key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    #[default]
    Http,
    Sql,
}

/// One entry of `operations:`: the kind's part of it (`request` for HTTP, `select`
/// for SQL) beside the kind-neutral keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OperationFile {
    title: String,
    #[serde(default)]
    subject: SubjectKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request: Option<RequestDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    select: Option<SelectDef>,
    schema: String,
    record: BTreeMap<String, FieldDef>,
}

impl TryFrom<DefinitionFile> for ConnectorDef {
    type Error = String;

    fn try_from(file: DefinitionFile) -> Result<ConnectorDef, String> {
        let transport = match file.kind {
            Kind::Http => {
                if file.database.is_some() {
                    return Err(
                        "`database` is for `kind: sql`; an HTTP connector has `base_url`".into(),
                    );
                }
                let (Some(base_url), Some(envelope)) = (file.base_url, file.envelope) else {
                    return Err("`kind: http` needs `base_url` and `envelope`".into());
                };
                Transport::Http(HttpSettings {
                    base_url,
                    max_response_bytes: file
                        .max_response_bytes
                        .unwrap_or_else(default_max_response_bytes),
                    tls: file.tls,
                    envelope,
                })
            }
            Kind::Sql => {
                if file.base_url.is_some()
                    || file.envelope.is_some()
                    || file.tls.is_some()
                    || file.max_response_bytes.is_some()
                {
                    return Err("`kind: sql` takes `database`, not `base_url`, `envelope`, `tls` or `max_response_bytes` (the operator declares the front database's connection)".into());
                }
                let Some(database) = file.database else {
                    return Err(
                        "`kind: sql` needs `database`: the name of the department's front database"
                            .into(),
                    );
                };
                Transport::Sql(SqlSettings { database })
            }
        };
        for (name, op) in &file.operations {
            let fits = matches!(
                (&transport, &op.call),
                (Transport::Http(_), OperationCall::Http(_))
                    | (Transport::Sql(_), OperationCall::Sql(_))
            );
            if !fits {
                return Err(format!(
                    "operation `{name}`: a `kind: {}` connector's operations have `{}`",
                    transport.kind(),
                    match transport {
                        Transport::Http(_) => "request",
                        Transport::Sql(_) => "select",
                    }
                ));
            }
        }
        Ok(ConnectorDef {
            id: file.id,
            title: file.title,
            department: file.department,
            transport,
            timeouts: file.timeouts,
            cache: file.cache,
            capacity: file.capacity,
            sharing_terms: file.sharing_terms,
            code_tables: file.code_tables,
            operations: file.operations,
        })
    }
}

impl From<ConnectorDef> for DefinitionFile {
    fn from(def: ConnectorDef) -> DefinitionFile {
        let mut file = DefinitionFile {
            id: def.id,
            title: def.title,
            department: def.department,
            kind: Kind::Http,
            base_url: None,
            database: None,
            timeouts: def.timeouts,
            max_response_bytes: None,
            tls: None,
            cache: def.cache,
            capacity: def.capacity,
            envelope: None,
            sharing_terms: def.sharing_terms,
            code_tables: def.code_tables,
            operations: def.operations,
        };
        match def.transport {
            Transport::Http(http) => {
                file.base_url = Some(http.base_url);
                file.max_response_bytes = Some(http.max_response_bytes);
                file.tls = http.tls;
                file.envelope = Some(http.envelope);
            }
            Transport::Sql(sql) => {
                file.kind = Kind::Sql;
                file.database = Some(sql.database);
            }
        }
        file
    }
}

impl TryFrom<OperationFile> for OperationDef {
    type Error = &'static str;

    fn try_from(op: OperationFile) -> Result<OperationDef, &'static str> {
        let call = match (op.request, op.select) {
            (Some(request), None) => OperationCall::Http(request),
            (None, Some(select)) => OperationCall::Sql(select),
            _ => {
                return Err(
                    "an operation has either `request` (kind: http) or `select` (kind: sql)",
                );
            }
        };
        Ok(OperationDef {
            title: op.title,
            subject: op.subject,
            call,
            schema: op.schema,
            record: op.record,
        })
    }
}

impl From<OperationDef> for OperationFile {
    fn from(op: OperationDef) -> OperationFile {
        let (request, select) = match op.call {
            OperationCall::Http(request) => (Some(request), None),
            OperationCall::Sql(select) => (None, Some(select)),
        };
        OperationFile {
            title: op.title,
            subject: op.subject,
            request,
            select,
            schema: op.schema,
            record: op.record,
        }
    }
}
