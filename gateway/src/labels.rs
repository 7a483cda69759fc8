//! Words for codes: the languages the gateway speaks to people (zh-CN, en), how a
//! caller picks one (`Accept-Language`, or a `labels`/`lang` value in a body), and
//! the labels of the codes departments and the gateway itself use.

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
