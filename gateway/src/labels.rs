//! Words for codes: the languages the gateway speaks to people (zh-CN, en), how a
//! caller picks one (`Accept-Language`, or a `labels`/`lang` value in a body), and
//! the labels of the codes departments and the gateway itself use.
//!
//! The labels are the project's own file, `labels.yaml` next to this module
//! (compiled in): a table per kind of code (gender, relation, hukou type, status,
//! marital status, insurance scheme and status, ethnicity) keyed by the canonical
//! codes the connectors' `code_tables` produce, the gateway's own `reasons`, and
//! which table a record field's codes are in. The catalog serves every table
//! ([`catalog`]); an answer asked for in a language gets a label beside each code
//! ([`label_answer`]; the HTTP layer asks for it in `crate::http::labels`): in a record, `"gender": "male", "gender_label": "男"`; on a form
//! field of type `code`, `"value_label"`; beside any known `reason`,
//! `"reason_label"`. Without a request for labels, answers are unchanged.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The labels file, compiled in.
const LABELS_FILE: &str = include_str!("labels.yaml");

/// The table of the gateway's own reasons.
const REASONS: &str = "reasons";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelsFile {
    /// table → code → [zh-CN, en].
    tables: BTreeMap<String, BTreeMap<String, [String; 2]>>,
    /// field path or name → table.
    fields: BTreeMap<String, String>,
}

static LABELS: LazyLock<LabelsFile> = LazyLock::new(|| {
    serde_yaml_ng::from_str(LABELS_FILE).unwrap_or_else(|e| {
        tracing::error!(error = %e, "labels.yaml does not parse; answers carry codes only");
        LabelsFile::default()
    })
});

/// Every code table with both languages, for the catalog:
/// `{table: {code: {"zh-CN": …, "en": …}}}`.
pub fn catalog() -> Value {
    let tables: Map<String, Value> = LABELS
        .tables
        .iter()
        .map(|(table, codes)| {
            let codes: Map<String, Value> = codes
                .iter()
                .map(|(code, [zh, en])| (code.clone(), json!({"zh-CN": zh, "en": en})))
                .collect();
            (table.clone(), Value::Object(codes))
        })
        .collect();
    Value::Object(tables)
}

/// The table a field's codes are in: by its path in a record (`schemes[].status`),
/// else by its last name.
pub fn table_of(path: &str) -> Option<&'static str> {
    let fields = &LABELS.fields;
    let last = path
        .rsplit('.')
        .next()
        .unwrap_or(path)
        .trim_end_matches("[]");
    fields
        .get(path)
        .or_else(|| fields.get(last))
        .map(String::as_str)
}

/// The label of `code` in `table`, in `lang`.
pub fn label(table: &str, code: &str, lang: Lang) -> Option<&'static str> {
    let [zh, en] = LABELS.tables.get(table)?.get(code)?;
    Some(match lang {
        Lang::ZhCn => zh.as_str(),
        Lang::En => en.as_str(),
    })
}

/// Adds labels to an answer: the codes of its record (`data`), the values of its
/// form fields of type `code`, and every known `reason`.
pub fn label_answer(answer: &mut Value, lang: Lang) {
    if let Some(data) = answer.get_mut("data") {
        label_record(data, "", lang);
    }
    label_reasons_and_form_fields(answer, lang);
}

/// `key_label` beside each coded value of a record, found by its path.
fn label_record(value: &mut Value, path: &str, lang: Lang) {
    match value {
        Value::Object(fields) => {
            let mut labels = Vec::new();
            for (key, field) in fields.iter_mut() {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match field {
                    Value::String(code) => {
                        if let Some(text) = table_of(&at).and_then(|t| label(t, code, lang)) {
                            labels.push((format!("{key}_label"), text));
                        }
                    }
                    other => label_record(other, &at, lang),
                }
            }
            for (key, text) in labels {
                fields.insert(key, json!(text));
            }
        }
        Value::Array(items) => {
            let at = format!("{path}[]");
            for item in items {
                label_record(item, &at, lang);
            }
        }
        _ => {}
    }
}

fn label_reasons_and_form_fields(value: &mut Value, lang: Lang) {
    match value {
        Value::Object(object) => {
            let reason = object
                .get("reason")
                .and_then(Value::as_str)
                .and_then(|r| label(REASONS, r, lang));
            if let Some(text) = reason {
                object.insert("reason_label".to_owned(), json!(text));
            }
            let coded = match (object.get("type"), object.get("id"), object.get("value")) {
                (Some(Value::String(kind)), Some(Value::String(id)), Some(Value::String(code)))
                    if kind == "code" =>
                {
                    table_of(id).and_then(|t| label(t, code, lang))
                }
                _ => None,
            };
            if let Some(text) = coded {
                object.insert("value_label".to_owned(), json!(text));
            }
            for child in object.values_mut() {
                label_reasons_and_form_fields(child, lang);
            }
        }
        Value::Array(items) => {
            for item in items {
                label_reasons_and_form_fields(item, lang);
            }
        }
        _ => {}
    }
}

/// A language the gateway writes labels and headers in. zh-CN is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// 简体中文.
    #[default]
    ZhCn,
    /// English.
    En,
}

impl Lang {
    /// The tag as the gateway writes it: `zh-CN` or `en`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::ZhCn => "zh-CN",
            Lang::En => "en",
        }
    }

    /// A language named in a body (`zh-CN`, `zh`, `en`, `en-US`, any case); `None`
    /// for one the gateway does not speak.
    pub fn parse(text: &str) -> Option<Lang> {
        let primary = text
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match primary.as_str() {
            "zh" => Some(Lang::ZhCn),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The caller's choice from an `Accept-Language` header: the spoken language
    /// with the highest weight (ties: the first), `None` when none is spoken.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(Lang, f32)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default();
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok());
            let (Some(lang), Some(weight)) = (Lang::parse(tag), weight) else {
                continue;
            };
            if weight > 0.0 && best.is_none_or(|(_, w)| weight > w) {
                best = Some((lang, weight));
            }
        }
        best.map(|(lang, _)| lang)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labels_file_parses_and_covers_every_connectors_code_table() {
        let parsed: LabelsFile = serde_yaml_ng::from_str(LABELS_FILE).unwrap();
        for file in ["hukou", "shebao", "jisheng"] {
            let text = crate::county::COUNTY_FILES
                .iter()
                .find(|(path, _)| *path == format!("county/connectors/{file}.yaml"))
                .map(|(_, text)| *text)
                .unwrap();
            let def: connectors::ConnectorDef = connectors::definition::parse_yaml(text).unwrap();
            for (table, codes) in &def.code_tables {
                for canonical in codes.values() {
                    assert!(
                        label(table, canonical, Lang::ZhCn).is_some()
                            && label(table, canonical, Lang::En).is_some(),
                        "{file}: {table}.{canonical} has no label"
                    );
                }
            }
            for op in def.operations.values() {
                for (path, field) in connectors::ConnectorDef::leaf_defs(op) {
                    if let Some(connectors::definition::Transform::Code(table)) = &field.transform {
                        assert_eq!(table_of(&path), Some(table.as_str()), "{file}: {path}");
                    }
                }
            }
        }
        assert!(parsed.tables.contains_key(REASONS));
        assert_eq!(label("ethnicity", "01", Lang::ZhCn), Some("汉族"));
    }

    #[test]
    fn an_answer_gets_labels_beside_its_codes() {
        let mut answer = json!({
            "data": {"gender": "female", "name": "王芳", "ethnicity": "11",
                     "schemes": [{"scheme": "resident_pension", "status": "suspended"}],
                     "status": "moved_out"},
            "withheld": [{"field": "income", "reason": "not_granted"}],
            "sections": [{"fields": [{"id": "relation", "type": "code", "value": "wife"},
                                      {"id": "name", "type": "text", "value": "head"}]}],
        });
        label_answer(&mut answer, Lang::ZhCn);
        assert_eq!(answer["data"]["gender_label"], "女");
        assert_eq!(answer["data"]["ethnicity_label"], "满族");
        assert_eq!(answer["data"]["status_label"], "迁出");
        assert_eq!(
            answer["data"]["schemes"][0]["scheme_label"],
            "城乡居民基本养老保险"
        );
        assert_eq!(answer["data"]["schemes"][0]["status_label"], "暂停缴费");
        assert!(answer["data"].get("name_label").is_none());
        assert_eq!(answer["withheld"][0]["reason_label"], "无授权");
        assert_eq!(answer["sections"][0]["fields"][0]["value_label"], "妻");
        assert!(
            answer["sections"][0]["fields"][1]
                .get("value_label")
                .is_none()
        );
        let mut english = json!({"data": {"gender": "male"}});
        label_answer(&mut english, Lang::En);
        assert_eq!(english["data"]["gender_label"], "male");
    }

    #[test]
    fn accept_language_picks_the_heaviest_spoken_language() {
        assert_eq!(Lang::from_accept_language("en"), Some(Lang::En));
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Some(Lang::En));
        assert_eq!(
            Lang::from_accept_language("fr, en;q=0.5, zh-CN;q=0.8"),
            Some(Lang::ZhCn)
        );
        assert_eq!(Lang::from_accept_language("fr, de"), None);
        assert_eq!(Lang::from_accept_language("en;q=0"), None);
        assert_eq!(Lang::parse("ZH-cn"), Some(Lang::ZhCn));
        assert_eq!(Lang::parse("klingon"), None);
        assert_eq!(Lang::default().tag(), "zh-CN");
    }
}
