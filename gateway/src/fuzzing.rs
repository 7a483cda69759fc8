//! Entry points for the fuzz targets of `fuzz/` (`cargo fuzz`): each takes the bytes
//! a stranger controls and runs them through the same parsing and checking the
//! gateway applies to them — the HTTP layer's JSON bodies, ID numbers and division
//! codes, bearer tokens, connector definitions and form templates, department
//! answers, masks and audit segments. None of them may panic; where a property holds
//! beyond that (a round trip is stable, a mask shows no more than its spec, a record
//! that passes its schema has only declared fields), a broken one is returned as
//! [`Broken`] and the target panics with it, so that libFuzzer keeps the input.
//!
//! This module is not part of the gateway's API: it exists for `fuzz/` and for the
//! unit test that replays the committed seeds and regressions on every `cargo test`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;
use chrono::NaiveDate;
use connectors::definition::{ConnectorDef, SubjectKey, Transport};
use connectors::subject::IdNumber;
use serde_json::Value;

use crate::config::{ActiveConfig, EmbeddedSource, LoadOptions, load};
use crate::county::{COUNTY_CONFIG, COUNTY_FILES};
use crate::mask::{Mask, MaskContext, PseudonymKey};

/// A property that does not hold for an input (what broke, never the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken(pub String);

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a target returns: `Ok` when every property held (whether or not the input
/// was accepted).
pub type Checked = Result<(), Broken>;

fn broken(what: impl Into<String>) -> Checked {
    Err(Broken(what.into()))
}

/// A target: its name (the directory of its seeds) and its entry point.
pub type Target = (&'static str, fn(&[u8]) -> Checked);

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    ("query_body", query_body),
    ("fill_body", fill_body),
    ("access_request_body", access_request_body),
    ("privacy_filter", privacy_filter),
    ("id_and_division", id_and_division),
    ("jwt", jwt),
    ("connector_definition", connector_definition),
    ("form_template", form_template),
    ("department_answer", department_answer),
    ("mask", mask),
    ("audit_segment", audit_segment),
];

/// The day the checks that need one count on (a fixed one: runs are reproducible).
fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 1).unwrap_or_default()
}

/// The demo county, loaded once.
fn county() -> Result<&'static ActiveConfig, Broken> {
    static COUNTY: OnceLock<Result<ActiveConfig, String>> = OnceLock::new();
    COUNTY
        .get_or_init(|| load_county(None).map_err(|n| format!("{n} problems")))
        .as_ref()
        .map_err(|e| Broken(format!("the demo county does not load: {e}")))
}

/// The demo county with one file's text replaced; `Err` holds the number of problems.
fn load_county(replace: Option<(&str, &str)>) -> Result<ActiveConfig, usize> {
    let files = COUNTY_FILES.iter().map(|(path, text)| match replace {
        Some((replaced, by)) if replaced == *path => (*path, by.to_owned()),
        _ => (*path, (*text).to_owned()),
    });
    load(
        &EmbeddedSource::new(files),
        Path::new(COUNTY_CONFIG),
        &LoadOptions::default(),
    )
    .map_err(|problems| problems.len())
}

/// The headers of a JSON request.
fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers
}

/// Reads `data` as the HTTP layer reads a JSON body into `T`.
fn read_body<T: serde::de::DeserializeOwned>(data: &[u8], expected: &str) -> Option<T> {
    crate::http::body::json(&json_headers(), Ok(Bytes::copy_from_slice(data)), expected).ok()
}

/// A body `T` accepted is accepted again, with the same meaning (`same`), once
/// written back out as JSON: parse → serialize → parse is stable.
fn body_round_trip<T: serde::de::DeserializeOwned>(
    data: &[u8],
    expected: &str,
    first: &T,
    same: impl Fn(&T, &T) -> bool,
) -> Checked {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return broken("a body the parser accepts is not JSON");
    };
    let Ok(written) = serde_json::to_vec(&value) else {
        return broken("an accepted body cannot be written back");
    };
    match read_body::<T>(&written, expected) {
        Some(again) if same(first, &again) => Ok(()),
        Some(_) => broken("an accepted body means something else once written back"),
        None => broken("an accepted body is refused once written back"),
    }
}

/// A case id checked is checked again to itself (normalising is idempotent).
fn case_id_stable(case_id: &str) -> Checked {
    if let Ok(normal) = crate::lookup::check_case_id(case_id)
        && crate::lookup::check_case_id(&normal).as_deref() != Ok(normal.as_str())
    {
        return broken("a normalised case id does not check to itself");
    }
    Ok(())
}

/// `POST /v1/query`: the body, its labels, its case id and its subject by either key.
pub fn query_body(data: &[u8]) -> Checked {
    use crate::http::request::QueryRequest;
    let headers = json_headers();
    let Ok(request) = crate::http::request::parse(&headers, Ok(Bytes::copy_from_slice(data)))
    else {
        return Ok(());
    };
    let expected = "{connector, operation, subject: {id_number}, purpose, case_id}";
    let parts = |r: &QueryRequest| {
        format!(
            "{:?}{:?}{:?}{:?}{:?}",
            r.connector, r.operation, r.purpose, r.case_id, r.labels
        )
    };
    body_round_trip::<QueryRequest>(data, expected, &request, |a, b| parts(a) == parts(b))?;
    let _ = crate::http::labels::requested(request.labels.as_deref(), &headers);
    case_id_stable(&request.case_id)?;
    let (id, household) = request.subject.into_parts();
    for key in [SubjectKey::IdNumber, SubjectKey::HouseholdNumber] {
        let _ = crate::lookup::subject_key(key, id.clone(), household.clone());
    }
    Ok(())
}

/// A form fill's body: its subject, case id, labels and the values stated for each
/// of the demo's forms.
pub fn fill_body(data: &[u8]) -> Checked {
    use crate::http::forms::FillRequest;
    let expected = "{subject: {id_number}, case_id, labels, stated}";
    let Some(request) = read_body::<FillRequest>(data, expected) else {
        return Ok(());
    };
    let parts = |r: &FillRequest| format!("{:?}{:?}{:?}", r.case_id, r.labels, r.stated);
    body_round_trip::<FillRequest>(data, expected, &request, |a, b| parts(a) == parts(b))?;
    let _ = crate::http::labels::requested(request.labels.as_deref(), &json_headers());
    case_id_stable(&request.case_id)?;
    let _ = request.subject.key(SubjectKey::IdNumber);
    let config = county()?;
    let stated = request.stated.unwrap_or_default();
    for form in config.forms.iter() {
        let _ = crate::fill::check_stated(config, form, stated.clone());
    }
    Ok(())
}

/// `POST /v1/access-requests`: the body, checked against the demo county.
pub fn access_request_body(data: &[u8]) -> Checked {
    use crate::access::{NEW_REQUEST_SHAPE, NewRequest};
    let Some(request) = read_body::<NewRequest>(data, NEW_REQUEST_SHAPE) else {
        return Ok(());
    };
    let debug = |r: &NewRequest| format!("{r:?}");
    body_round_trip::<NewRequest>(data, NEW_REQUEST_SHAPE, &request, |a, b| {
        debug(a) == debug(b)
    })?;
    let config = county()?;
    if let Ok(asked) = crate::access::check_request(&request, config, today())
        && asked.fields.keys().any(|f| !request.fields.contains_key(f))
    {
        return broken("a checked request asks for a field the body did not name");
    }
    Ok(())
}

/// The privacy officer's bodies (search, export, a citizen's report, the anomaly
/// report) and the checks of their filters and windows.
pub fn privacy_filter(data: &[u8]) -> Checked {
    use crate::http::privacy::bodies::{
        AnomaliesIn, ExportIn, FilterIn, ReportIn, SearchIn, Shape,
    };
    let filter = |f: &FilterIn| -> Checked {
        let subject_pseudonym = match &f.id_number {
            Some(raw) => match IdNumber::parse(raw) {
                Ok(id) => Some(id.masked()),
                Err(_) => return Ok(()),
            },
            None => None,
        };
        let filter = crate::audit::search::Filter {
            subject_pseudonym,
            user: f.user.clone(),
            township: f.township.clone(),
            connector: f.connector.clone(),
            purpose: f.purpose.clone(),
            outcome: f.outcome,
            status: f.status,
            from: f.from.clone(),
            until: f.until.clone(),
        };
        let _ = crate::audit::check_filter(&filter);
        Ok(())
    };
    if let Some(search) = read_body::<SearchIn>(data, SearchIn::EXPECTED) {
        filter(&search.filter)?;
        let _ = crate::audit::check_limit(search.limit.unwrap_or(100));
    }
    if let Some(export) = read_body::<ExportIn>(data, ExportIn::EXPECTED) {
        filter(&export.filter)?;
        let _ = export.lang.as_deref().map(crate::labels::Lang::parse);
    }
    if let Some(report) = read_body::<ReportIn>(data, ReportIn::EXPECTED) {
        let _ = IdNumber::parse(&report.id_number);
    }
    if let Some(anomalies) = read_body::<AnomaliesIn>(data, AnomaliesIn::EXPECTED) {
        let thresholds = anomalies.thresholds.unwrap_or_default();
        if let Ok((from, until)) =
            crate::audit::anomalies::window(&anomalies.from, &anomalies.until, &thresholds)
            && from >= until
        {
            return broken("an anomaly window ends before it starts");
        }
    }
    Ok(())
}

/// The ID-number check (GB 11643) and the division codes: a village or township code
/// placing a resident, a caller's villages, an address stated as a division, a
/// household number.
pub fn id_and_division(data: &[u8]) -> Checked {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    if let Ok(id) = IdNumber::parse(text) {
        if IdNumber::parse(id.as_str()).as_ref() != Ok(&id) {
            return broken("an ID number does not parse back to itself");
        }
        if !id.as_str().eq_ignore_ascii_case(text) {
            return broken("a parsed ID number is not the text it was parsed from");
        }
        let masked = id.masked();
        if masked.chars().count() != 18 || masked.chars().filter(|c| *c == '*').count() != 8 {
            return broken("a masked ID number shows more than region and last four");
        }
        let seq = id.as_str()[14..17].parse::<u16>().unwrap_or(u16::MAX);
        if IdNumber::build(id.region(), id.birth_date(), seq).as_ref() != Ok(&id) {
            return broken("an ID number is not built again from its parts");
        }
    }
    let residence = crate::jurisdiction::Residence::from_code(text);
    if let Some(township) = &residence.township
        && (township.len() != 9 || !text.starts_with(township.as_str()))
    {
        return broken("a division code places someone outside it");
    }
    // A caller's villages: the text split into codes, under the first nine digits.
    let codes: Vec<&str> = text.split(',').collect();
    let township = text.get(..9);
    if let Ok(villages) = crate::auth::check_villages(township, &codes[..])
        && villages
            .iter()
            .any(|v| v.len() != 12 || !codes.contains(&v.as_str()))
    {
        return broken("a checked village is not one of the codes given");
    }
    for key in ["village_code", "township_code", "county_code"] {
        let mut object = serde_json::Map::new();
        object.insert(key.to_owned(), Value::String(text.to_owned()));
        if let Some(crate::verification::Claim::Division(code)) =
            crate::verification::division_claim(&object)
            && code != text
        {
            return broken("a stated division is not the code stated");
        }
    }
    let _ = crate::lookup::household_number(text.to_owned());
    Ok(())
}

/// A bearer token before its signature is checked: the query-string refusal, the
/// `Authorization` header, the token taken apart, and its claims as they would be
/// checked once the signature verified.
pub fn jwt(data: &[u8]) -> Checked {
    let text = String::from_utf8_lossy(data);
    let token = text.as_ref();
    let rules = crate::auth::ClaimRules {
        audience: "county-gateway",
        leeway_s: 30,
        now: 1_780_000_000,
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        headers.insert(header::AUTHORIZATION, value);
    }
    let bearer = crate::auth::bearer_token(&headers).is_ok_and(|t| t == token);
    let in_query = format!("/v1/query?x={token}")
        .parse::<axum::http::Uri>()
        .ok()
        .map(|uri| crate::auth::refuse_token_in_query(&uri).is_err());
    let _ = crate::auth::looks_like_jwt(token);
    if let Ok(unverified) = crate::auth::parse_token(token) {
        if !token.starts_with(unverified.signing_input)
            || !token.ends_with(unverified.signature)
            || unverified.signing_input.len() + 1 + unverified.signature.len() != token.len()
        {
            return broken("a token's parts are not the token");
        }
        // A token the header would carry is refused in a query string.
        if bearer && in_query == Some(false) {
            return broken("a well-formed token is not refused in a query string");
        }
        let _ = crate::auth::check_claims(&unverified.claims, "county-demo-idp", rules);
    }
    // The claims themselves, as JSON (the fuzzer reaches the claim rules directly).
    if let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(data) {
        let _ = crate::auth::check_claims(&claims, "county-demo-idp", rules);
    }
    Ok(())
}

/// The `id` a YAML document names, if it names one.
fn yaml_id(text: &str) -> Option<String> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).ok()?;
    value.get("id")?.as_str().map(str::to_owned)
}

/// A connector definition as a department admin writes it: parsed, checked, written
/// back (the round trip is stable), and loaded into the demo county in place of the
/// connector of its id (else `hukou`).
pub fn connector_definition(data: &[u8]) -> Checked {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let Ok(def) = ConnectorDef::from_yaml(text) else {
        return Ok(());
    };
    let Ok(written) = serde_yaml_ng::to_string(&def) else {
        return broken("a parsed definition cannot be written back");
    };
    match ConnectorDef::from_yaml(&written) {
        Ok(again) if again == def => {}
        Ok(_) => return broken("a definition written back reads as another"),
        Err(_) => return broken("a definition written back does not parse"),
    }
    if !def.validate().is_empty() {
        return Ok(());
    }
    let path = format!("county/connectors/{}.yaml", def.id);
    let path = if COUNTY_FILES.iter().any(|(p, _)| *p == path) {
        path
    } else {
        "county/connectors/hukou.yaml".to_owned()
    };
    let _ = load_county(Some((&path, text)));
    Ok(())
}

/// A form template: parsed, and loaded into the demo county in place of the form of
/// its id (else the birth registration form), where it is checked against the
/// connectors it reads.
pub fn form_template(data: &[u8]) -> Checked {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    if connectors::definition::parse_yaml::<crate::forms::FormFile>(text).is_err() {
        return Ok(());
    }
    let path = format!("forms/{}.yaml", yaml_id(text).unwrap_or_default());
    let path = if COUNTY_FILES.iter().any(|(p, _)| *p == path) {
        path
    } else {
        "forms/birth-registration.yaml".to_owned()
    };
    if let Ok(config) = load_county(Some((&path, text)))
        && config.forms.len() != county()?.forms.len()
    {
        return broken("a form replaced changes how many forms there are");
    }
    Ok(())
}

/// A department's answer, read through every HTTP operation of the demo county:
/// envelope, mapping (code tables, dates), then the record's schema. A record that
/// passes its schema holds only the operation's declared fields.
pub fn department_answer(data: &[u8]) -> Checked {
    let config = county()?;
    for connector in config.connectors.values() {
        let Transport::Http(settings) = &connector.def.transport else {
            continue;
        };
        for (name, operation) in &connector.def.operations {
            let Ok(record) = connectors::http::read_answer(
                &connector.def,
                &settings.envelope,
                &operation.record,
                data,
            ) else {
                continue;
            };
            let Some(active) = connector.operations.get(name) else {
                continue;
            };
            if active.schema.check(&record).is_err() {
                continue;
            }
            let paths = ConnectorDef::leaf_defs(operation)
                .into_iter()
                .map(|(path, _)| path)
                .collect::<BTreeSet<String>>();
            let mut found = Vec::new();
            leaf_paths(&record, String::new(), &mut found);
            if let Some(extra) = found.iter().find(|p| !is_declared(&paths, p)) {
                return broken(format!(
                    "{}.{name}: a record that passes its schema holds `{extra}`, which is not declared",
                    connector.def.id
                ));
            }
        }
    }
    Ok(())
}

/// Whether a record's leaf path is declared: a declared leaf, a list of scalars
/// declared by its own path, or an object or list of declared fields that is null
/// or empty.
fn is_declared(paths: &BTreeSet<String>, path: &str) -> bool {
    let object = format!("{path}.");
    let list = format!("{path}[]");
    paths.iter().any(|p| {
        p == path || p.starts_with(&object) || p.starts_with(&list) || path == format!("{p}[]")
    })
}

/// The dotted paths (`children[].name`) of a record's leaves: scalars, nulls and
/// empty containers.
fn leaf_paths(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                let path = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                leaf_paths(inner, path, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                leaf_paths(item, format!("{at}[]"), out);
            }
        }
        _ => out.push(at),
    }
}

/// A mask (its JSON form up to the first newline) applied to a value (the rest:
/// JSON, else the text itself). The spec's round trip is stable, and the masked
/// value shows no more of the original than the mask allows.
pub fn mask(data: &[u8]) -> Checked {
    let text = String::from_utf8_lossy(data);
    let (spec, rest) = text.split_once('\n').unwrap_or((text.as_ref(), ""));
    let Ok(mask) = serde_json::from_str::<Mask>(spec) else {
        return Ok(());
    };
    match serde_json::to_string(&mask).map(|s| serde_json::from_str::<Mask>(&s)) {
        Ok(Ok(again)) if again == mask => {}
        _ => return broken("a mask written back reads as another"),
    }
    match serde_yaml_ng::to_string(&mask).map(|s| serde_yaml_ng::from_str::<Mask>(&s)) {
        Ok(Ok(again)) if again == mask => {}
        _ => return broken("a mask written back as YAML reads as another"),
    }
    let value = serde_json::from_str::<Value>(rest).unwrap_or_else(|_| Value::from(rest));
    let key = PseudonymKey::new(&[7; 32]).map_err(|_| Broken("the pseudonym key".into()))?;
    let ctx = MaskContext {
        key: &key,
        today: today(),
    };
    let out = mask.apply(&value, &ctx);
    let original = match &value {
        Value::Null => return expect_null(&out),
        Value::Array(_) | Value::Object(_) if mask != Mask::Keep => return expect_null(&out),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    shows_no_more(&mask, &original, &value, &out)
}

fn expect_null(out: &Value) -> Checked {
    if out.is_null() {
        Ok(())
    } else {
        broken("a null, a list or an object is not masked to null")
    }
}

/// The masked value `out` of `original` shows only what `mask` allows.
fn shows_no_more(mask: &Mask, original: &str, value: &Value, out: &Value) -> Checked {
    let shown = match out {
        Value::Null => return Ok(()),
        Value::String(s) => s.as_str(),
        _ if *mask == Mask::Keep => "",
        _ => return broken("a mask gave something other than a string or null"),
    };
    let chars: Vec<char> = original.chars().collect();
    let shown_chars: Vec<char> = shown.chars().collect();
    let n = chars.len();
    // Keeps positions `first..n-last` as `fill`, the rest as they were.
    let positional = |first: usize, last: usize, fill: char| -> Checked {
        if shown_chars.len() != n {
            return broken("a positional mask changed the value's length");
        }
        let all_fill = n <= first.saturating_add(last);
        for (i, (o, s)) in chars.iter().zip(&shown_chars).enumerate() {
            let kept = !all_fill && (i < first || i >= n - last);
            if (kept && s != o) || (!kept && *s != fill) {
                return broken(format!(
                    "a positional mask (first {first}, last {last}) shows position {i}"
                ));
            }
        }
        Ok(())
    };
    match mask {
        Mask::Keep => {
            if out != value {
                return broken("keep changed the value");
            }
            Ok(())
        }
        Mask::Redact => broken("redact showed something"),
        Mask::Partial { first, last, fill } => positional(*first, *last, *fill),
        Mask::IdNumber { first, last } => positional(*first, *last, '*'),
        Mask::Phone => {
            let mobile = original.len() == 11
                && original.starts_with('1')
                && original.bytes().all(|b| b.is_ascii_digit());
            if mobile {
                positional(3, 4, '*')
            } else {
                positional(0, 4, '*')
            }
        }
        Mask::Name => {
            if shown_chars.len() != n {
                return broken("the name mask changed the name's length");
            }
            let visible: Vec<usize> = (0..n).filter(|i| shown_chars[*i] != '*').collect();
            let allowed = if n <= 1 { 0 } else { 2 };
            if visible.len() > allowed || visible.iter().any(|i| shown_chars[*i] != chars[*i]) {
                return broken("the name mask shows more than the surname and the last char");
            }
            if n == 2 && visible.iter().any(|i| *i != 0) {
                return broken("the name mask shows a two-char name's given name");
            }
            Ok(())
        }
        Mask::DateYear => {
            if shown.len() != 4 || !shown.bytes().all(|b| b.is_ascii_digit()) {
                return broken("date_year gave something other than a year");
            }
            if !original.starts_with(shown) {
                return broken("date_year gave another year than the date's");
            }
            Ok(())
        }
        Mask::AgeBand => {
            let band = shown == "90+"
                || shown.split_once('-').is_some_and(|(low, high)| {
                    match (low.parse::<i32>(), high.parse::<i32>()) {
                        (Ok(low), Ok(high)) => low % 10 == 0 && high == low + 9 && low >= 0,
                        _ => false,
                    }
                });
            if band {
                Ok(())
            } else {
                broken("age_band gave something other than a band")
            }
        }
        Mask::AddressTo(_) => {
            if !original.starts_with(shown) {
                return broken("address_to gave something other than the address's start");
            }
            Ok(())
        }
        Mask::Pseudonym => {
            let hex = shown.strip_prefix("psn_").unwrap_or_default();
            if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return broken("a pseudonym is not psn_ and 32 hex digits");
            }
            Ok(())
        }
    }
}

/// An audit segment file read back from disk: its header, its frames up to the first
/// bad one, each event's body as an audit event and each checkpoint's text. A frame
/// read is written again to the same bytes, and an event read is written again to a
/// body that reads as the same event.
pub fn audit_segment(data: &[u8]) -> Checked {
    use crate::audit::segments::format::{
        Frames, HEADER_LEN, Header, Record, encode_checkpoint, encode_event,
    };
    if let Ok(header) = Header::decode(data)
        && header.encode()[..] != data[..HEADER_LEN]
    {
        return broken("a segment header is not written back to its bytes");
    }
    let mut frames = Frames::new(data, HEADER_LEN);
    let mut at = HEADER_LEN;
    for frame in frames.by_ref() {
        let Ok(record) = frame else { break };
        let mut written = Vec::new();
        match record {
            Record::Event {
                seq,
                prev_hash,
                body,
            } => {
                encode_event(&mut written, seq, prev_hash, body);
                if let Ok(event) = serde_json::from_slice::<crate::audit::AuditEvent>(body) {
                    let Ok(canonical) = crate::audit::canonical::event_body(&event) else {
                        return broken("an event read cannot be written back");
                    };
                    match serde_json::from_str::<crate::audit::AuditEvent>(&canonical) {
                        Ok(again) if again == event => {}
                        _ => return broken("an event written back reads as another"),
                    }
                }
            }
            Record::Checkpoint { seq, text } => {
                encode_checkpoint(&mut written, seq, text);
                let _ = crate::audit::checkpoint::Checkpoint::parse(text);
            }
        }
        let Some(original) = data.get(at..at + written.len()) else {
            return broken("a frame read is longer than the file");
        };
        if original != written.as_slice() {
            return broken("a frame read is not written back to its bytes");
        }
        at += written.len();
    }
    if data.len() >= HEADER_LEN && frames.offset() != at {
        return broken("the frames read do not end where the reader says");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed seeds and every kept crash (`fuzz/corpus/<target>`,
    /// `fuzz/regressions/<target>`) pass every target's properties: a crash found
    /// once is replayed by every `cargo test`, without cargo-fuzz.
    #[test]
    fn the_seeds_and_regressions_pass() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut ran = 0;
        for (name, target) in TARGETS {
            for dir in ["corpus", "regressions"] {
                let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.unwrap().path();
                    let data = std::fs::read(&path).unwrap();
                    if let Err(e) = target(&data) {
                        panic!("{name}: {}: {e}", path.display());
                    }
                    ran += 1;
                }
            }
        }
        assert!(ran > 0, "no seeds under {}", root.display());
    }

    /// Writes the seed corpus (`fuzz/corpus/<target>/`) from the demo's own files
    /// and answers: the API document's request examples, the county's connectors
    /// and forms, the simulated departments' answers, the policies' masks, and a
    /// segment written by the audit log's own writer (`crafted.seg`, made by hand,
    /// is kept beside it). Run by hand when the demo's files change, and commit what
    /// it writes: `cargo test -p gateway --lib fuzzing::tests::write_seeds -- --ignored`.
    #[tokio::test]
    #[ignore = "writes fuzz/corpus: run by hand when the demo's files change"]
    async fn write_seeds() {
        use crate::http::openapi::examples as ex;
        use tower::ServiceExt;

        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        let write = |target: &str, name: &str, bytes: &[u8]| {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        };
        let json = |v: Value| serde_json::to_vec_pretty(&v).unwrap();

        write("query_body", "lookup.json", &json(ex::lookup()));
        write(
            "query_body",
            "household.json",
            &json(
                serde_json::json!({"connector": "hukou", "operation": "household",
                "subject": {"household_number": ex::HOUSEHOLD_NUMBER},
                "purpose": "birth_registration", "case_id": "DEMO-0005", "labels": "en"}),
            ),
        );
        write("fill_body", "fill.json", &json(ex::fill()));
        write(
            "fill_body",
            "stated.json",
            &json(serde_json::json!({"subject": {"id_number": ex::ID_NUMBER},
                "case_id": "DEMO-0006", "labels": "zh-CN", "stated": {"name": "王 秀英",
                "birth_date": "1948-03-02", "address": {"village_code": "139901101203"}}})),
        );
        write(
            "access_request_body",
            "request.json",
            &json(ex::access_request()),
        );
        write("privacy_filter", "search.json", &json(ex::audit_search()));
        write("privacy_filter", "export.json", &json(ex::audit_export()));
        write("privacy_filter", "report.json", &json(ex::audit_report()));
        write(
            "privacy_filter",
            "anomalies.json",
            &json(ex::audit_anomalies()),
        );
        for (name, text) in [
            ("id_number", ex::ID_NUMBER),
            ("village", "139901101203"),
            ("township", "139901101"),
            ("villages", "139901101203,139901101204"),
            ("household", ex::HOUSEHOLD_NUMBER),
        ] {
            write("id_and_division", name, text.as_bytes());
        }

        let (key, _, _) = crate::auth::SigningKey::generate_es256("county-demo-idp").unwrap();
        let claims = crate::auth::MintClaims {
            iss: "county-demo-idp".into(),
            aud: "county-gateway".into(),
            sub: "grid-dongling".into(),
            roles: vec![crate::auth::Role::parse("grid_worker").unwrap()],
            township: Some("139901101".into()),
            villages: vec!["139901101203".into()],
            department: None,
            app: None,
            ttl_s: 600,
            not_before_s: None,
        };
        let token = crate::auth::mint(&key, &claims).unwrap();
        write("jwt", "token", token.as_bytes());
        let payload = token.split('.').nth(1).unwrap();
        let payload =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap();
        write("jwt", "claims.json", &payload);

        for (path, text) in COUNTY_FILES {
            let name = Path::new(path).file_name().unwrap().to_str().unwrap();
            if path.starts_with("county/connectors/") {
                write("connector_definition", name, text.as_bytes());
            } else if path.starts_with("forms/") {
                write("form_template", name, text.as_bytes());
            }
        }

        // The simulated departments' answers to each HTTP operation, in process.
        let population = std::sync::Arc::new(sim::population::Population::demo());
        let person = population
            .sample(sim::population::SampleKind::MarriedParent)
            .unwrap();
        let household = population.household_of(person.id.as_str()).unwrap();
        let config = county().unwrap();
        for connector in config.connectors.values() {
            let Transport::Http(settings) = &connector.def.transport else {
                continue;
            };
            let Some(department) = sim::Department::from_id(&connector.def.id) else {
                continue;
            };
            for (name, op) in &connector.def.operations {
                let connectors::definition::OperationCall::Http(request) = &op.call else {
                    continue;
                };
                let key = match op.subject {
                    SubjectKey::IdNumber => person.id.as_str().to_owned(),
                    SubjectKey::HouseholdNumber => household.number.clone(),
                };
                let body = serde_json::to_string(&request.body)
                    .unwrap()
                    .replace(connectors::http::SUBJECT_PLACEHOLDER, &key);
                let router = sim::router(
                    department,
                    population.clone(),
                    sim::faults::FaultHandle::default(),
                );
                let response = router
                    .oneshot(
                        axum::http::Request::post(request.path.as_str())
                            .header("content-type", "application/json")
                            .body(axum::body::Body::from(body))
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap();
                assert!(
                    connectors::http::read_answer(
                        &connector.def,
                        &settings.envelope,
                        &op.record,
                        &bytes
                    )
                    .is_ok(),
                    "{}.{name}",
                    connector.def.id
                );
                write(
                    "department_answer",
                    &format!("{}-{name}.json", connector.def.id),
                    &bytes,
                );
            }
        }

        for (name, spec, value) in [
            ("keep", r#""keep""#, r#""139901101""#),
            ("redact", r#""redact""#, r#""13812345678""#),
            (
                "partial",
                r#"{"partial":{"first":1,"last":1,"fill":"*"}}"#,
                r#""6222020200112233""#,
            ),
            ("name", r#""name""#, r#""欧阳娜娜""#),
            (
                "id_number",
                r#"{"id_number":{"first":6,"last":4}}"#,
                r#""13990119750327229X""#,
            ),
            ("phone", r#""phone""#, r#""13812345678""#),
            ("date_year", r#""date_year""#, r#""1975-03-27""#),
            ("age_band", r#""age_band""#, r#""1948-03-02""#),
            (
                "address_to",
                r#"{"address_to":"township"}"#,
                r#""河北省示范市示范县东岭镇东岭村3组12号""#,
            ),
            ("pseudonym", r#""pseudonym""#, r#""13990119750327229X""#),
            ("number", r#""phone""#, "13812345678"),
        ] {
            write("mask", name, format!("{spec}\n{value}").as_bytes());
        }

        // A segment as the audit log's writer leaves it on disk: events and the
        // checkpoints signing them.
        let dir = tempfile::TempDir::new().unwrap();
        let options = crate::audit::AuditOptions {
            checkpoint_every_events: 2,
            ..crate::audit::AuditOptions::default()
        };
        let log = crate::audit::SegmentAudit::open(dir.path(), options).unwrap();
        for (i, operation) in [
            "config.load",
            "audit.search",
            "access.request",
            "audit.report",
        ]
        .into_iter()
        .enumerate()
        {
            let caller = crate::audit::AuditCaller::gateway();
            let mut event =
                crate::audit::AuditEvent::admin(&format!("seed-{i}"), caller, operation);
            event.case_id = Some(format!("DEMO-{i:04}"));
            crate::audit::AuditLog::append(&log, event).await.unwrap();
        }
        drop(log);
        let chain = dir.path().join(crate::audit::segments::format::DIR);
        let segment = &crate::audit::segments::format::list(&chain).unwrap()[0];
        write(
            "audit_segment",
            "writer.seg",
            &std::fs::read(&segment.path).unwrap(),
        );
    }
}
