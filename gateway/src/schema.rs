//! JSON Schemas of canonical records: compiled once at load, checked on every record
//! a department returns (fail closed), and compared with connector mappings so that a
//! mapped field the schema does not declare is a configuration error.
//!
//! Remote `$ref` resolution is off (the crate is built without its resolvers) and
//! formats are validated.

use std::collections::BTreeMap;

use connectors::definition::FieldDef;
use serde_json::Value;

/// A compiled record schema.
#[derive(Debug)]
pub struct RecordSchema {
    validator: jsonschema::Validator,
}

/// A record that broke its schema: where in the schema and where in the record, never
/// the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON Pointer into the schema, e.g. `/properties/township_code/pattern`.
    pub schema_path: String,
    /// JSON Pointer into the canonical record, e.g. `/township_code`.
    pub instance_path: String,
}

impl RecordSchema {
    /// Compiles a schema (draft 2020-12 unless it says otherwise).
    pub fn compile(schema: &Value) -> Result<RecordSchema, String> {
        jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .map(|validator| RecordSchema { validator })
            .map_err(|e| {
                // The error names the schema location; schemas are config, not data.
                format!("does not compile: {e}")
            })
    }

    /// Checks a canonical record, returning the first violation.
    pub fn check(&self, record: &Value) -> Result<(), Violation> {
        match self.validator.iter_errors(record).next() {
            None => Ok(()),
            Some(error) => Err(Violation {
                schema_path: error.schema_path().to_string(),
                instance_path: error.instance_path().to_string(),
            }),
        }
    }
}

/// Every mapped field the schema does not declare, as (dotted field path, message).
pub fn undeclared_fields(
    schema: &Value,
    fields: &BTreeMap<String, FieldDef>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk(schema, schema, "", fields, &mut out);
    out
}

fn walk(
    root: &Value,
    schema: &Value,
    prefix: &str,
    fields: &BTreeMap<String, FieldDef>,
    out: &mut Vec<(String, String)>,
) {
    let schema = resolve(root, schema);
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, field) in fields {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let Some(property) = properties.and_then(|p| p.get(name)) else {
            out.push((
                path,
                "is mapped but the record schema does not declare it".to_owned(),
            ));
            continue;
        };
        let property = resolve(root, property);
        if let Some(children) = &field.fields {
            walk(root, property, &path, children, out);
        } else if let Some(children) = &field.items {
            match property.get("items") {
                Some(items) => walk(root, items, &format!("{path}[]"), children, out),
                None => out.push((
                    path,
                    "is a list in the mapping but its schema has no `items`".to_owned(),
                )),
            }
        }
    }
}

/// Follows a local `$ref` (`#/...`); anything else is returned as it is.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with('#') => root.pointer(&r[1..]).unwrap_or(schema),
        _ => schema,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_violation_names_paths_but_not_values() {
        let schema = RecordSchema::compile(&json!({
            "type": "object",
            "properties": {"code": {"type": "string", "pattern": "^[0-9]{9}$"}}
        }))
        .unwrap();
        assert!(schema.check(&json!({"code": "139901101"})).is_ok());
        let v = schema.check(&json!({"code": "SECRET"})).unwrap_err();
        assert_eq!(v.schema_path, "/properties/code/pattern");
        assert_eq!(v.instance_path, "/code");
    }

    #[test]
    fn formats_are_validated() {
        let schema = RecordSchema::compile(&json!({"type": "string", "format": "date"})).unwrap();
        assert!(schema.check(&json!("2020-02-29")).is_ok());
        assert!(schema.check(&json!("2021-02-29")).is_err());
    }

    #[test]
    fn remote_references_are_not_fetched() {
        let err = RecordSchema::compile(&json!({"$ref": "https://example.invalid/s.json"}));
        assert!(err.is_err());
    }

    #[test]
    fn mapped_fields_missing_from_the_schema_are_listed() {
        let fields: BTreeMap<String, FieldDef> = serde_yaml_ng::from_str(
            r#"
name: { from: /xm, pii: name, sharing: open }
nickname: { from: /bm, pii: name, sharing: open }
children: { from: /zn, items: { age: { from: /nl, pii: count, sharing: open } } }
"#,
        )
        .unwrap();
        let schema = json!({
            "$defs": {"child": {"type": "object", "properties": {"birth_date": {}}}},
            "properties": {"name": {}, "children": {"items": {"$ref": "#/$defs/child"}}}
        });
        assert_eq!(
            undeclared_fields(&schema, &fields),
            [
                (
                    "children[].age".to_owned(),
                    "is mapped but the record schema does not declare it".to_owned()
                ),
                (
                    "nickname".to_owned(),
                    "is mapped but the record schema does not declare it".to_owned()
                ),
            ]
        );
    }
}
