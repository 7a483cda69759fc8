//! The declarative mapping from a department's record to the canonical record.
//!
//! It owns reading values by JSON Pointer, renaming, date and month reformatting, code
//! table lookups and number parsing. Only fields the definition names are read, so an
//! undeclared upstream field can never reach the canonical record. Errors name the
//! definition's path and the rule that failed, never the value.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde_json::{Map, Value};

use crate::definition::{ConnectorDef, FieldDef, Transform};

/// A department value that does not fit the connector's mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` (from `{from}`): {rule}")]
pub struct MappingError {
    /// The canonical field's dotted path, e.g. `children[].birth_date`.
    pub field: String,
    /// The upstream pointer the value was read from, e.g. `/zn/1/csrq`.
    pub from: String,
    /// What was expected, e.g. `a date in %Y%m%d`.
    pub rule: String,
}

/// Maps one department record (the envelope's data) to the canonical record.
pub fn map_record(
    def: &ConnectorDef,
    fields: &BTreeMap<String, FieldDef>,
    data: &Value,
) -> Result<Value, MappingError> {
    map_object(def, "", "", fields, data).map(Value::Object)
}

fn map_object(
    def: &ConnectorDef,
    prefix: &str,
    from_prefix: &str,
    fields: &BTreeMap<String, FieldDef>,
    data: &Value,
) -> Result<Map<String, Value>, MappingError> {
    let mut out = Map::with_capacity(fields.len());
    for (name, field) in fields {
        // Where the field is, for an error or a nested object's fields: written only
        // when needed, not for every field of every record.
        let path = || {
            if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            }
        };
        let from = || format!("{from_prefix}{}", field.from);
        let raw = data.pointer(&field.from).unwrap_or(&Value::Null);
        let value = if let Some(children) = &field.fields {
            match raw {
                Value::Null => Value::Null,
                Value::Object(_) => {
                    Value::Object(map_object(def, &path(), &from(), children, raw)?)
                }
                _ => return Err(error(&path(), &from(), "an object or null")),
            }
        } else if let Some(children) = &field.items {
            match raw {
                Value::Null => Value::Array(Vec::new()),
                Value::Array(items) => {
                    let (item_path, from) = (format!("{}[]", path()), from());
                    let mut mapped = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        if !item.is_object() {
                            return Err(error(&item_path, &format!("{from}/{i}"), "an object"));
                        }
                        let item_from = format!("{from}/{i}");
                        mapped.push(Value::Object(map_object(
                            def, &item_path, &item_from, children, item,
                        )?));
                    }
                    Value::Array(mapped)
                }
                _ => return Err(error(&path(), &from(), "a list or null")),
            }
        } else {
            transform(def, field.transform.as_ref(), raw)
                .map_err(|rule| error(&path(), &from(), &rule))?
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

fn error(field: &str, from: &str, rule: &str) -> MappingError {
    MappingError {
        field: field.to_owned(),
        from: from.to_owned(),
        rule: format!("expected {rule}"),
    }
}

fn transform(def: &ConnectorDef, rule: Option<&Transform>, raw: &Value) -> Result<Value, String> {
    let Some(rule) = rule else {
        return Ok(raw.clone());
    };
    match (rule, raw) {
        (_, Value::Null) => Ok(Value::Null),
        (Transform::Date(_) | Transform::Month(_), Value::String(s)) if s.is_empty() => {
            Ok(Value::Null)
        }
        (Transform::Date(fmt), Value::String(s)) => NaiveDate::parse_from_str(s, fmt)
            .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
            .map_err(|_| format!("a date in {fmt}")),
        (Transform::Month(fmt), Value::String(s)) => {
            // chrono needs a day to build a date; a month format has none.
            NaiveDate::parse_from_str(&format!("{s}|01"), &format!("{fmt}|%d"))
                .map(|d| Value::String(d.format("%Y-%m").to_string()))
                .map_err(|_| format!("a month in {fmt}"))
        }
        (Transform::Code(table), Value::String(_) | Value::Number(_)) => {
            let key = match raw {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            def.code_tables
                .get(table)
                .and_then(|t| t.get(&key))
                .map(|v| Value::String(v.clone()))
                .ok_or_else(|| format!("a code from table `{table}`"))
        }
        (Transform::Number, Value::Number(_)) => Ok(raw.clone()),
        (Transform::Number, Value::String(s)) => {
            let parsed: Option<Value> = if let Ok(i) = s.trim().parse::<i64>() {
                Some(i.into())
            } else {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            };
            parsed.ok_or_else(|| "a number".to_owned())
        }
        (Transform::Date(fmt), _) => Err(format!("a date in {fmt}")),
        (Transform::Month(fmt), _) => Err(format!("a month in {fmt}")),
        (Transform::Code(table), _) => Err(format!("a code from table `{table}`")),
        (Transform::Number, _) => Err("a number".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def() -> ConnectorDef {
        ConnectorDef::from_yaml(
            r#"
id: demo
title: 示例
department: { id: dept, name: 示例部门 }
base_url: http://127.0.0.1:1
envelope: { status: /code, ok: [0], data: /data }
code_tables: { gender: { "1": male, "2": female } }
operations:
  person:
    title: t
    request: { path: /p, body: { id: "$subject" } }
    schema: s.json
    record:
      name: { from: /xm, pii: name, sharing: conditional }
      gender: { from: /xb, transform: { code: gender }, pii: code, sharing: open }
      birth_date: { from: /csrq, transform: { date: "%Y%m%d" }, pii: date, sharing: open }
      last_paid: { from: /yf, transform: { month: "%Y%m" }, pii: date, sharing: open }
      pension: { from: /ylj, transform: number, pii: money, sharing: conditional }
      spouse:
        from: /po
        fields:
          name: { from: /xm, pii: name, sharing: conditional }
      children:
        from: /zn
        items:
          birth_date: { from: /csrq, transform: { date: "%Y-%m-%d" }, pii: date, sharing: open }
"#,
        )
        .unwrap()
    }

    fn map(data: Value) -> Result<Value, MappingError> {
        let def = def();
        let op = &def.operations["person"];
        map_record(&def, &op.record, &data)
    }

    #[test]
    fn maps_renames_dates_codes_and_numbers() {
        let out = map(json!({
            "xm": "测试甲", "xb": "2", "csrq": "19900307", "yf": "202610", "ylj": "1850.20",
            "po": {"xm": "测试乙", "extra": 1},
            "zn": [{"csrq": "2016-02-11", "secret": "x"}],
            "undeclared": "never copied"
        }))
        .unwrap();
        assert_eq!(
            out,
            json!({
                "name": "测试甲", "gender": "female", "birth_date": "1990-03-07",
                "last_paid": "2026-10", "pension": 1850.2,
                "spouse": {"name": "测试乙"},
                "children": [{"birth_date": "2016-02-11"}]
            })
        );
    }

    #[test]
    fn missing_and_empty_values_become_null_or_empty() {
        let out = map(json!({"csrq": "", "po": null})).unwrap();
        assert_eq!(out["birth_date"], Value::Null);
        assert_eq!(out["spouse"], Value::Null);
        assert_eq!(out["children"], json!([]));
    }

    #[test]
    fn errors_name_the_field_and_rule_but_not_the_value() {
        let err =
            map(json!({"zn": [{"csrq": "2016-02-11"}, {"csrq": "SECRET-VALUE"}]})).unwrap_err();
        assert_eq!(err.field, "children[].birth_date");
        assert_eq!(err.from, "/zn/1/csrq");
        assert!(!err.to_string().contains("SECRET-VALUE"));

        let err = map(json!({"xb": "7"})).unwrap_err();
        assert_eq!(err.field, "gender");
        assert_eq!(err.rule, "expected a code from table `gender`");
        assert!(!err.to_string().contains('7'));

        assert_eq!(
            map(json!({"ylj": "abc"})).unwrap_err().rule,
            "expected a number"
        );
        assert_eq!(
            map(json!({"csrq": "19900230"})).unwrap_err().field,
            "birth_date"
        );
    }
}
