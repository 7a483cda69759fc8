//! The request examples of the API document: the demo county's names (connectors,
//! operations, purposes, forms, departments) and its synthetic people, so each one works
//! as written against `gateway demo` with the token of a persona holding one of the
//! operation's roles. The ID numbers are made up and carry valid check digits:
//! `13990119750327229X` is the resident the demo's own hints use (a married parent of
//! 东岭镇, household `205000006`).

use serde_json::{Value, json};

/// The demo's sample resident.
pub(crate) const ID_NUMBER: &str = "13990119750327229X";
/// The sample resident's household.
pub(crate) const HOUSEHOLD_NUMBER: &str = "205000006";
/// The connector the connector examples register (the 县公安局's, one open operation).
pub(crate) const NEW_CONNECTOR: &str = "hukou-residence";

pub(crate) fn lookup() -> Value {
    json!({
        "connector": "hukou",
        "operation": "person_by_id",
        "subject": {"id_number": ID_NUMBER},
        "purpose": "birth_registration",
        "case_id": "DEMO-0001",
    })
}

pub(crate) fn verify() -> Value {
    json!({
        "connector": "hukou",
        "operation": "person_by_id",
        "subject": {"id_number": ID_NUMBER},
        "purpose": "elderly_allowance",
        "case_id": "DEMO-0003",
        "claims": {
            "name": "邓俊浩",
            "birth_date": "1975-03-27",
            "address": {"township_code": "139901101"},
        },
    })
}

pub(crate) fn fill() -> Value {
    json!({
        "subject": {"id_number": ID_NUMBER},
        "case_id": "DEMO-0002",
    })
}

pub(crate) fn audit_search() -> Value {
    json!({
        "filter": {"connector": "hukou", "purpose": "birth_registration", "from": "2026-01-01"},
        "limit": 10,
    })
}

pub(crate) fn audit_export() -> Value {
    json!({"filter": {"id_number": ID_NUMBER}, "format": "csv", "lang": "zh-CN"})
}

pub(crate) fn audit_report() -> Value {
    json!({"id_number": ID_NUMBER})
}

pub(crate) fn audit_anomalies() -> Value {
    json!({
        "from": "2026-12-01",
        "until": "2026-12-31",
        "thresholds": {"subjects_per_hour": 30, "office_hours": [8, 18]},
    })
}

/// A new connector of the 县公安局: where a person's household is registered, open
/// fields only (a new connector's fields loosen the classification, so it waits for
/// the data-governance office's review).
pub(crate) fn connector() -> Value {
    json!({
        "definition": {
            "id": NEW_CONNECTOR,
            "title": "户籍所在地核验",
            "department": {"id": "county-psb"},
            "kind": "http",
            "base_url": "http://127.0.0.1:18101",
            "timeouts": {"connect_ms": 1000, "total_ms": 3000},
            "envelope": {"status": "/code", "ok": [0], "not_found": [404], "data": "/data"},
            "code_tables": {"status": {"0": "normal", "1": "moved_out", "2": "deceased"}},
            "operations": {
                "residence_by_id": {
                    "title": "按公民身份号码核验户籍所在地",
                    "subject": "id_number",
                    "request": {
                        "method": "POST",
                        "path": "/rkxx/api/v1/person",
                        "body": {"sfzh": "$subject"},
                    },
                    "schema": "hukou-residence/residence.schema.json",
                    "record": {
                        "township_code": {"from": "/xzqh", "title": "乡镇（街道）代码", "pii": "none", "sharing": "open"},
                        "village_code": {"from": "/cun", "title": "村（社区）代码", "pii": "none", "sharing": "open"},
                        "status": {"from": "/ryzt", "title": "人员状态", "transform": {"code": "status"}, "pii": "code", "sharing": "open"},
                    },
                },
            },
        },
        "schemas": {
            "hukou-residence/residence.schema.json": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "additionalProperties": false,
                "required": ["township_code", "village_code", "status"],
                "properties": {
                    "township_code": {"type": "string", "pattern": "^[0-9]{9}$"},
                    "village_code": {"type": "string", "pattern": "^[0-9]{12}$"},
                    "status": {"enum": ["normal", "moved_out", "deceased"]},
                },
            },
        },
    })
}

/// Why, for disable, enable and purge (kept in the audit event).
pub(crate) fn reason() -> Value {
    json!({"reason": "部门系统升级维护，今晚 22:00 恢复"})
}

pub(crate) fn connector_test() -> Value {
    json!({"operation": "residence_by_id", "subject": {"id_number": ID_NUMBER}})
}

pub(crate) fn version_test() -> Value {
    json!({"subject": {"id_number": ID_NUMBER, "household_number": HOUSEHOLD_NUMBER}})
}

pub(crate) fn rollback() -> Value {
    json!({"version": 1})
}

pub(crate) fn review_approval() -> Value {
    json!({"note": "仅开放乡镇、村代码与人员状态，不含姓名和地址，同意。"})
}

pub(crate) fn review_refusal() -> Value {
    json!({"reason": "人员状态属有条件共享，请改为 conditional 后重新提交。"})
}

/// The 东岭镇 lead asks for a resident's name and birth date for rural housing permits.
pub(crate) fn access_request() -> Value {
    json!({
        "connector": "hukou",
        "operations": ["person_by_id"],
        "purposes": ["rural_housing"],
        "fields": {"name": "default", "birth_date": "default"},
        "roles": ["clerk"],
        "justification": "农民建房申请需核对申请人姓名与年龄",
    })
}

/// The 县公安局 approves the name, and the birth date as a year only.
pub(crate) fn approval() -> Value {
    json!({
        "fields": {"name": "keep", "birth_date": "date_year"},
        "quota": {"per_day": 200},
        "note": "出生日期仅提供年份",
    })
}

pub(crate) fn refusal() -> Value {
    json!({"reason": "农民建房审核只需户主信息，请改为按户查询。"})
}

pub(crate) fn revocation() -> Value {
    json!({"reason": "建房审批已结束"})
}

pub(crate) fn correction() -> Value {
    json!({
        "connector": "hukou",
        "operation": "person_by_id",
        "field": "name",
        "subject": {"id_number": ID_NUMBER},
        "stated_value": "邓俊豪",
        "note": "本人称姓名末字登记有误，出生证明为\u{201c}豪\u{201d}。",
        "case_id": "DEMO-0001",
        "evidence": "出生医学证明复印件，窗口存档",
    })
}

pub(crate) fn correction_rejection() -> Value {
    json!({"reason": "经核对户籍档案，原登记无误。"})
}

pub(crate) fn correction_acceptance() -> Value {
    json!({"reason": "已按出生医学证明更正户籍姓名。"})
}
