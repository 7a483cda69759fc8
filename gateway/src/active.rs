//! The connectors of a configuration in force: each connector with its operations
//! ready to serve (schema, record shape, classified leaves) and its record cache.
//! Depends on neither forms nor policy, so both can read it; the whole
//! configuration ([`crate::config::ActiveConfig`]) assembles these with the policies
//! and forms.

use std::collections::BTreeMap;
use std::sync::Arc;

use connectors::definition::{FieldDef, LeafField, Sharing, SubjectKey};
use connectors::{Connector, ConnectorDef};

use crate::cache::RecordCache;
use crate::schema::RecordSchema;

/// The shape of an operation's record, from its connector definition.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldNode {
    Leaf(Sharing),
    Object(BTreeMap<String, FieldNode>),
    List(BTreeMap<String, FieldNode>),
}

impl FieldNode {
    pub fn tree(fields: &BTreeMap<String, FieldDef>) -> BTreeMap<String, FieldNode> {
        fields
            .iter()
            .map(|(name, f)| {
                let node = if let Some(children) = &f.fields {
                    FieldNode::Object(FieldNode::tree(children))
                } else if let Some(children) = &f.items {
                    FieldNode::List(FieldNode::tree(children))
                } else {
                    FieldNode::Leaf(f.sharing.unwrap_or(Sharing::Never))
                };
                (name.clone(), node)
            })
            .collect()
    }
}

/// One operation, ready to serve.
#[derive(Debug)]
pub struct ActiveOperation {
    pub subject: SubjectKey,
    pub schema: Arc<RecordSchema>,
    /// The record's shape, for minimizing.
    pub fields: BTreeMap<String, FieldNode>,
    /// Every leaf field with its classification, in record order.
    pub leaves: Vec<LeafField>,
}

/// One connector, ready to serve.
#[derive(Debug)]
pub struct ActiveConnector {
    pub def: Arc<ConnectorDef>,
    pub connector: Arc<dyn Connector>,
    pub operations: BTreeMap<String, ActiveOperation>,
    /// The department's validated records, when its connector allows caching.
    /// Shared with the next configuration when this connector is unchanged in it.
    pub cache: Option<Arc<RecordCache>>,
    /// A digest of the definition and its schemas: equal digests, same connector.
    pub digest: String,
}
