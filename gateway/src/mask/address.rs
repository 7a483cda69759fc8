//! The `address_to` mask: a Chinese address cut after an administrative level.
//!
//! An address reads from the largest area to the smallest: [province] [prefecture]
//! county, township, village, then the detail (组, 号, 路 …). The cut keeps
//! everything up to and including the level's suffix; a level that cannot be found
//! gives `None` (the caller shows null), so the mask never shows more than asked.
//!
//! Suffix characters also occur inside place names (湘乡市, 镇江市, 新市镇), so the
//! township is found first, with two guards — a county suffix must come before it
//! with a non-empty township name between, and no county suffix may follow it
//! directly — and the county is the last county suffix before the township's name.

use super::AddressLevel;

/// Municipalities: a province-level unit named with 市.
const MUNICIPALITIES: [&str; 4] = ["北京市", "天津市", "上海市", "重庆市"];
const PROVINCE_SUFFIXES: [&str; 3] = ["省", "自治区", "特别行政区"];
/// The longest province name with its suffix (新疆维吾尔自治区) in chars.
const PROVINCE_MAX_CHARS: usize = 8;
const COUNTY_SUFFIXES: [char; 4] = ['市', '县', '区', '旗'];
const TOWNSHIP_SUFFIXES: [&str; 4] = ["镇", "乡", "街道", "苏木"];
const VILLAGE_SUFFIXES: [&str; 4] = ["村", "社区", "嘎查", "居委会"];
/// Characters that start the street-level detail of an address; used to bound the
/// county when an address has no township.
const DETAIL_CHARS: [char; 11] = [
    '路', '街', '道', '巷', '弄', '号', '组', '楼', '栋', '幢', '室',
];

/// `s` cut after `level`, or `None` when the level cannot be found.
pub(super) fn truncate(s: &str, level: AddressLevel) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    let province = province_end(&chars);
    let from = province.unwrap_or(0);
    let end = match level {
        AddressLevel::Province => province,
        AddressLevel::County => county_end(&chars, from),
        AddressLevel::Township => township(&chars, from).map(|(_, end)| end),
        AddressLevel::Village => village_end(&chars, from),
    }?;
    Some(chars[..end].iter().collect())
}

/// Whether `pat` occurs in `chars` at `at`.
fn matches_at(chars: &[char], at: usize, pat: &str) -> bool {
    (at..)
        .zip(pat.chars())
        .all(|(i, p)| chars.get(i) == Some(&p))
}

/// The end (exclusive, in chars) of the province part, if there is one.
fn province_end(chars: &[char]) -> Option<usize> {
    if MUNICIPALITIES.iter().any(|m| matches_at(chars, 0, m)) {
        return Some(3);
    }
    (1..PROVINCE_MAX_CHARS).find_map(|at| {
        PROVINCE_SUFFIXES
            .iter()
            .find(|suffix| matches_at(chars, at, suffix))
            .map(|suffix| at + suffix.chars().count())
            .filter(|end| *end <= PROVINCE_MAX_CHARS)
    })
}

/// Positions of county suffixes after the province part, each with a non-empty name.
fn county_suffixes(chars: &[char], from: usize) -> impl Iterator<Item = usize> + '_ {
    (from + 1..chars.len()).filter(|i| COUNTY_SUFFIXES.contains(&chars[*i]))
}

/// The township's suffix: (start, end) in chars.
fn township(chars: &[char], from: usize) -> Option<(usize, usize)> {
    (from..chars.len()).find_map(|at| {
        let suffix = TOWNSHIP_SUFFIXES
            .iter()
            .find(|suffix| matches_at(chars, at, suffix))?;
        let end = at + suffix.chars().count();
        let after_county = county_suffixes(chars, from).any(|c| c + 2 <= at);
        let inside_county_name = chars.get(end).is_some_and(|c| COUNTY_SUFFIXES.contains(c));
        (after_county && !inside_county_name).then_some((at, end))
    })
}

/// The end (exclusive, in chars) of the county part.
fn county_end(chars: &[char], from: usize) -> Option<usize> {
    let limit = match township(chars, from) {
        // The township's name is at least one char.
        Some((start, _)) => start.saturating_sub(1),
        None => (from..chars.len())
            .find(|i| chars[*i].is_ascii_digit() || DETAIL_CHARS.contains(&chars[*i]))
            .unwrap_or(chars.len()),
    };
    county_suffixes(chars, from)
        .take_while(|c| *c < limit)
        .last()
        .map(|c| c + 1)
}

/// The end (exclusive, in chars) of the village part.
fn village_end(chars: &[char], from: usize) -> Option<usize> {
    let (_, township_end) = township(chars, from)?;
    (township_end + 1..chars.len()).find_map(|at| {
        VILLAGE_SUFFIXES
            .iter()
            .find(|suffix| matches_at(chars, at, suffix))
            .map(|suffix| at + suffix.chars().count())
    })
}

#[cfg(test)]
mod tests {
    use super::truncate;
    use crate::mask::AddressLevel::{self, County, Province, Township, Village};

    fn cut(s: &str, level: AddressLevel) -> Option<String> {
        truncate(s, level)
    }

    #[test]
    fn county_address_without_province() {
        let a = "示范县东岭镇桃园村3组12号";
        assert_eq!(cut(a, Province).as_deref(), None);
        assert_eq!(cut(a, County).as_deref(), Some("示范县"));
        assert_eq!(cut(a, Township).as_deref(), Some("示范县东岭镇"));
        assert_eq!(cut(a, Village).as_deref(), Some("示范县东岭镇桃园村"));
    }

    #[test]
    fn full_address_without_township() {
        let a = "河北省石家庄市长安区建设北大街5号";
        assert_eq!(cut(a, Province).as_deref(), Some("河北省"));
        assert_eq!(cut(a, County).as_deref(), Some("河北省石家庄市长安区"));
        assert_eq!(cut(a, Township).as_deref(), None);
        assert_eq!(cut(a, Village).as_deref(), None);
    }

    #[test]
    fn municipality_and_street_office() {
        let a = "北京市东城区东华门街道多福巷社区1号";
        assert_eq!(cut(a, Province).as_deref(), Some("北京市"));
        assert_eq!(cut(a, County).as_deref(), Some("北京市东城区"));
        assert_eq!(cut(a, Township).as_deref(), Some("北京市东城区东华门街道"));
        assert_eq!(
            cut(a, Village).as_deref(),
            Some("北京市东城区东华门街道多福巷社区")
        );
    }

    #[test]
    fn autonomous_region_banner_sumu_gacha() {
        let a = "内蒙古自治区呼伦贝尔市鄂温克族自治旗巴彦托海镇";
        assert_eq!(cut(a, Province).as_deref(), Some("内蒙古自治区"));
        assert_eq!(
            cut(a, County).as_deref(),
            Some("内蒙古自治区呼伦贝尔市鄂温克族自治旗")
        );
        let b = "阿巴嘎旗洪格尔高勒苏木巴彦查干嘎查2号";
        assert_eq!(cut(b, County).as_deref(), Some("阿巴嘎旗"));
        assert_eq!(cut(b, Township).as_deref(), Some("阿巴嘎旗洪格尔高勒苏木"));
        assert_eq!(
            cut(b, Village).as_deref(),
            Some("阿巴嘎旗洪格尔高勒苏木巴彦查干嘎查")
        );
    }

    #[test]
    fn suffix_chars_inside_place_names() {
        // 湘乡市: 乡 is part of a county-level city's name.
        let a = "湖南省湘乡市东山街道";
        assert_eq!(cut(a, County).as_deref(), Some("湖南省湘乡市"));
        assert_eq!(cut(a, Township).as_deref(), Some("湖南省湘乡市东山街道"));
        // 镇江市: 镇 starts a prefecture's name.
        let b = "江苏省镇江市丹徒区辛丰镇东岗村";
        assert_eq!(cut(b, County).as_deref(), Some("江苏省镇江市丹徒区"));
        assert_eq!(
            cut(b, Township).as_deref(),
            Some("江苏省镇江市丹徒区辛丰镇")
        );
        assert_eq!(
            cut(b, Village).as_deref(),
            Some("江苏省镇江市丹徒区辛丰镇东岗村")
        );
        // 安乡县 under a prefecture.
        let c = "常德市安乡县安障乡";
        assert_eq!(cut(c, County).as_deref(), Some("常德市安乡县"));
        assert_eq!(cut(c, Township).as_deref(), Some("常德市安乡县安障乡"));
        // 新市镇: 市 is part of a township's name.
        let d = "示范县新市镇西村";
        assert_eq!(cut(d, County).as_deref(), Some("示范县"));
        assert_eq!(cut(d, Township).as_deref(), Some("示范县新市镇"));
        assert_eq!(cut(d, Village).as_deref(), Some("示范县新市镇西村"));
    }

    #[test]
    fn prefecture_and_county_level_city() {
        let a = "河北省石家庄市辛集市旧城镇";
        assert_eq!(cut(a, County).as_deref(), Some("河北省石家庄市辛集市"));
        assert_eq!(
            cut(a, Township).as_deref(),
            Some("河北省石家庄市辛集市旧城镇")
        );
    }

    #[test]
    fn unknown_levels_are_none() {
        for a in [
            "",
            "镇",
            "桃园村",
            "东岭镇桃园村",
            "3组12号",
            "😀👨‍👩‍👧",
            "e\u{301}\u{301}",
        ] {
            for level in [Province, County, Township, Village] {
                assert_eq!(cut(a, level).as_deref(), None, "{a} {level:?}");
            }
        }
        // The village must follow a township.
        assert_eq!(cut("示范县桃园村", Village).as_deref(), None);
        assert_eq!(cut("示范县桃园村", County).as_deref(), Some("示范县"));
    }

    #[test]
    fn never_more_than_the_input() {
        let a = "示范县东岭镇";
        assert_eq!(cut(a, Township).as_deref(), Some(a));
        assert_eq!(cut(a, Village).as_deref(), None);
    }
}
