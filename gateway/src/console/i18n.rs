//! The console's words: the message catalogues (`gateway/locales/<lang>/*.ftl`,
//! compiled in), a [`Tr`] that templates call for each string in the page's
//! language, and how a request's language is chosen — the `gw_lang` cookie set by
//! the switch on every page, then `Accept-Language`, then zh-CN.
//!
//! Codes from departments and the gateway's own reasons are worded by
//! [`crate::labels`]; problem types by the catalogue's `problem-<slug>` keys.

use std::borrow::Cow;
use std::collections::HashMap;

use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader, langid};

use crate::labels::Lang;

fluent_templates::static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "zh-CN",
        // Plain text around placeables: no Unicode isolation marks in pages.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

/// The cookie that remembers the language switch.
pub const LANG_COOKIE: &str = "gw_lang";

static ZH_CN: LanguageIdentifier = langid!("zh-CN");
static EN: LanguageIdentifier = langid!("en");

fn langid(lang: Lang) -> &'static LanguageIdentifier {
    match lang {
        Lang::ZhCn => &ZH_CN,
        Lang::En => &EN,
    }
}

/// The page's language: the cookie, else `Accept-Language`, else zh-CN.
pub fn choose(cookie: Option<&str>, accept_language: Option<&str>) -> Lang {
    cookie
        .and_then(Lang::parse)
        .or_else(|| accept_language.and_then(Lang::from_accept_language))
        .unwrap_or_default()
}

/// The strings of one language, as templates use them: `{{ t.get("key") }}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tr {
    pub lang: Lang,
}

impl Tr {
    pub fn new(lang: Lang) -> Tr {
        Tr { lang }
    }

    /// The language's tag for `<html lang>`: `zh-CN` or `en`.
    pub fn tag(&self) -> &'static str {
        self.lang.tag()
    }

    /// The message `key`; the key itself when missing (a test keeps both catalogues
    /// complete, so this shows only in development).
    pub fn get(&self, key: &str) -> String {
        LOCALES
            .try_lookup(langid(self.lang), key)
            .unwrap_or_else(|| key.to_owned())
    }

    /// The message `key` with one argument.
    pub fn arg(&self, key: &str, name: &str, value: &str) -> String {
        self.args(key, &[(name, value)])
    }

    /// The message `key` with arguments.
    pub fn args(&self, key: &str, args: &[(&str, &str)]) -> String {
        let map: HashMap<Cow<'static, str>, FluentValue<'_>> = args
            .iter()
            .map(|(name, value)| {
                (
                    Cow::Owned((*name).to_owned()),
                    FluentValue::from((*value).to_owned()),
                )
            })
            .collect();
        LOCALES
            .try_lookup_with_args(langid(self.lang), key, &map)
            .unwrap_or_else(|| key.to_owned())
    }

    /// The message `key` when the catalogue has it.
    pub fn maybe(&self, key: &str) -> Option<String> {
        LOCALES.try_lookup(langid(self.lang), key)
    }

    /// The words for a code under `prefix` (`sharing-open`, `pii-name`, …); the code
    /// itself when the catalogue has none.
    pub fn words(&self, prefix: &str, code: &str) -> String {
        self.maybe(&format!("{prefix}-{code}"))
            .unwrap_or_else(|| code.to_owned())
    }

    /// A purpose (事项) by its name in this language; its code when unknown.
    pub fn purpose(&self, config: &crate::config::ActiveConfig, code: &str) -> String {
        config.purposes.get(code).map_or_else(
            || code.to_owned(),
            |p| pick(self.lang, &p.name, Some(&p.name_en)).to_owned(),
        )
    }

    /// The words for a problem type (by its slug).
    pub fn problem(&self, slug: &str) -> String {
        self.maybe(&format!("problem-{slug}"))
            .unwrap_or_else(|| self.get("problem-unknown"))
    }

    /// "3 分钟前" / "3 minutes ago" for an age in seconds.
    pub fn age(&self, seconds: i64) -> String {
        let (key, n) = match seconds.max(0) {
            s if s < 60 => ("age-seconds", s),
            s if s < 3600 => ("age-minutes", s / 60),
            s if s < 86_400 => ("age-hours", s / 3600),
            s => ("age-days", s / 86_400),
        };
        self.arg(key, "n", &n.to_string())
    }

    /// The other language (for the switch).
    pub fn other(&self) -> Lang {
        match self.lang {
            Lang::ZhCn => Lang::En,
            Lang::En => Lang::ZhCn,
        }
    }
}

/// A text in the page's language: the English one when there is one and the page is
/// in English, else the Chinese.
pub fn pick<'a>(lang: Lang, zh: &'a str, en: Option<&'a str>) -> &'a str {
    match (lang, en) {
        (Lang::En, Some(en)) if !en.is_empty() => en,
        _ => zh,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The message ids of a catalogue file.
    fn keys(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter(|line| !line.starts_with([' ', '#', '\t', '.', '[', '*', '}']))
            .filter_map(|line| line.split_once(" =").map(|(k, _)| k.trim().to_owned()))
            .filter(|k| !k.is_empty())
            .collect()
    }

    fn catalogue(lang: &str) -> BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("locales")
            .join(lang);
        let mut all = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "ftl") {
                all.extend(keys(&std::fs::read_to_string(&path).unwrap()));
            }
        }
        all
    }

    #[test]
    fn both_catalogues_have_the_same_keys() {
        let zh = catalogue("zh-CN");
        let en = catalogue("en");
        assert!(
            zh.len() > 50,
            "the zh-CN catalogue looks empty: {}",
            zh.len()
        );
        let only_zh: Vec<_> = zh.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&zh).collect();
        assert!(
            only_zh.is_empty() && only_en.is_empty(),
            "keys in one language only: zh-CN only {only_zh:?}, en only {only_en:?}"
        );
    }

    #[test]
    fn every_problem_type_has_words_in_both_languages() {
        for lang in [Lang::ZhCn, Lang::En] {
            let t = Tr::new(lang);
            for kind in crate::problem::ProblemKind::ALL {
                assert!(
                    t.maybe(&format!("problem-{}", kind.slug())).is_some(),
                    "{} has no words for problem {}",
                    lang.tag(),
                    kind.slug()
                );
            }
        }
    }

    #[test]
    fn every_reason_a_form_gives_has_words_in_both_languages() {
        for lang in [Lang::ZhCn, Lang::En] {
            for reason in ["not_granted", "never_shared", "not_found", "timed_out"] {
                assert!(
                    crate::labels::label("reasons", reason, lang).is_some(),
                    "{} has no words for reason {reason}",
                    lang.tag()
                );
            }
        }
    }

    #[test]
    fn the_language_is_the_cookie_then_accept_language_then_chinese() {
        assert_eq!(choose(Some("en"), Some("zh-CN")), Lang::En);
        assert_eq!(choose(None, Some("en-GB,en;q=0.9")), Lang::En);
        assert_eq!(choose(Some("fr"), Some("de")), Lang::ZhCn);
        assert_eq!(choose(None, None), Lang::ZhCn);
    }

    #[test]
    fn messages_take_arguments_without_isolation_marks() {
        let t = Tr::new(Lang::ZhCn);
        assert_eq!(t.age(180), "3 分钟前");
        assert_eq!(Tr::new(Lang::En).age(180), "3 minutes ago");
    }
}
