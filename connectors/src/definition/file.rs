//! The YAML shape of a connector definition file, as department admins write it: the
//! kind (`kind: http`, the default when absent) and its settings sit beside the
//! kind-neutral keys, and each operation's `request` beside its record. This module
//! owns that shape and its conversion to and from [`ConnectorDef`]; unknown keys are
//! refused, at any depth.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    CacheDef, CapacityDef, ClientTlsDef, ConnectorDef, DepartmentRef, FieldDef, OperationCall,
    OperationDef, SharingTerms, SubjectKey, Timeouts, Transport,
};
use crate::http::{Envelope, HttpSettings, RequestDef, default_max_response_bytes};

/// A connector definition file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DefinitionFile {
    id: String,
    title: String,
    department: DepartmentRef,
    #[serde(default)]
    kind: Kind,
    base_url: String,
    #[serde(default)]
    timeouts: Timeouts,
    #[serde(default = "default_max_response_bytes")]
    max_response_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls: Option<ClientTlsDef>,
    #[serde(default)]
    cache: CacheDef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    capacity: Option<CapacityDef>,
    envelope: Envelope,
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
}

/// One entry of `operations:`: the kind's part of it (`request` for HTTP) beside the
/// kind-neutral keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OperationFile {
    title: String,
    #[serde(default)]
    subject: SubjectKey,
    request: RequestDef,
    schema: String,
    record: BTreeMap<String, FieldDef>,
}

impl From<DefinitionFile> for ConnectorDef {
    fn from(file: DefinitionFile) -> ConnectorDef {
        let transport = match file.kind {
            Kind::Http => Transport::Http(HttpSettings {
                base_url: file.base_url,
                max_response_bytes: file.max_response_bytes,
                tls: file.tls,
                envelope: file.envelope,
            }),
        };
        ConnectorDef {
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
        }
    }
}

impl From<ConnectorDef> for DefinitionFile {
    fn from(def: ConnectorDef) -> DefinitionFile {
        let Transport::Http(http) = def.transport;
        DefinitionFile {
            id: def.id,
            title: def.title,
            department: def.department,
            kind: Kind::Http,
            base_url: http.base_url,
            timeouts: def.timeouts,
            max_response_bytes: http.max_response_bytes,
            tls: http.tls,
            cache: def.cache,
            capacity: def.capacity,
            envelope: http.envelope,
            sharing_terms: def.sharing_terms,
            code_tables: def.code_tables,
            operations: def.operations,
        }
    }
}

impl From<OperationFile> for OperationDef {
    fn from(op: OperationFile) -> OperationDef {
        OperationDef {
            title: op.title,
            subject: op.subject,
            call: OperationCall::Http(op.request),
            schema: op.schema,
            record: op.record,
        }
    }
}

impl From<OperationDef> for OperationFile {
    fn from(op: OperationDef) -> OperationFile {
        let OperationCall::Http(request) = op.call;
        OperationFile {
            title: op.title,
            subject: op.subject,
            request,
            schema: op.schema,
            record: op.record,
        }
    }
}
