//! Word lists for the synthetic county: surnames, given-name characters, village and
//! community names, ethnicities, outside regions, banks and hereditary-disease notes.
//!
//! Only data lives here (plus a tiny picking helper); the rules that combine it into
//! households are in `generate.rs`.

use rand::Rng;

/// A tiny helper: one element of a non-empty list, chosen uniformly.
pub(crate) fn pick<T: Copy, R: Rng>(rng: &mut R, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// Common surnames (single characters), about the sixty most frequent.
pub(crate) const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
    "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金", "石", "贾",
];

/// Given-name characters more often chosen for boys.
pub(crate) const GIVEN_MALE: &[&str] = &[
    "伟", "强", "磊", "军", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "鹏", "华", "飞", "鑫",
    "波", "斌", "宇", "浩", "凯", "健", "俊", "帆", "旭", "宁", "龙", "林", "晨", "阳", "建", "国",
    "志", "文", "海", "峰", "亮", "成", "振", "博",
];

/// Given-name characters more often chosen for girls.
pub(crate) const GIVEN_FEMALE: &[&str] = &[
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "燕", "玲", "桂", "英", "红", "萍", "雪", "琳",
    "婷", "慧", "莹", "倩", "洁", "颖", "晶", "佳", "悦", "瑶", "欣", "怡", "梦", "雨", "思", "涵",
    "月", "兰", "秀", "珍", "凤", "梅", "丹", "璐",
];

/// Stems of village names; "村" is appended.
pub(crate) const VILLAGE_STEMS: &[&str] = &[
    "桃园",
    "杏林",
    "柳河",
    "石桥",
    "王庄",
    "李家堡",
    "张庄",
    "东沟",
    "西岭",
    "南坡",
    "北台",
    "红旗",
    "新华",
    "前进",
    "胜利",
    "大营",
    "小营",
    "马坊",
    "高庄",
    "刘家屯",
    "赵家湾",
    "枣林",
    "梨树沟",
    "杨树",
    "槐树岭",
    "榆林",
    "苇子坑",
    "河口",
    "古城",
    "新庄",
    "上庄",
    "下庄",
    "中和",
    "平安",
    "兴隆",
    "太平",
    "永安",
    "丰收",
    "黄土坡",
    "青山",
    "白石",
    "清泉",
    "双井",
    "三里铺",
    "五里铺",
    "七里河",
    "九里店",
    "龙泉",
];

/// Stems of urban community names; "社区" is appended.
pub(crate) const COMMUNITY_STEMS: &[&str] = &[
    "人民路",
    "建设路",
    "文化路",
    "解放路",
    "幸福里",
    "和平街",
    "团结",
    "光明",
    "新城",
    "滨河",
    "朝阳",
    "育才",
];

/// GB 3304 ethnicity codes with rough weights out of 100 for a northern county.
pub(crate) const ETHNICITIES: &[(&str, u32)] = &[
    ("01", 93), // 汉族
    ("11", 3),  // 满族
    ("03", 2),  // 回族
    ("02", 1),  // 蒙古族
    ("10", 1),  // 朝鲜族
];

/// Real-looking district codes of other provinces and cities, for people who married
/// into the county.
pub(crate) const OUTSIDE_REGIONS: &[&str] = &[
    "130102", "130104", "130203", "130602", "131102", "140105", "150102", "210102", "220102",
    "230102", "320106", "340104", "370102", "410105", "420106", "510104", "610113", "500103",
    "120101", "110105",
];

/// Banks that pay benefits in the county, with the two digits used after the synthetic
/// "99" prefix of their account numbers (no real card starts with 99).
pub(crate) const BANKS: &[(&str, &str)] = &[
    ("中国农业银行示范县支行", "03"),
    ("中国工商银行示范县支行", "01"),
    ("中国建设银行示范县支行", "05"),
    ("中国邮政储蓄银行示范县支行", "40"),
    ("示范县农村信用合作联社", "41"),
];

/// Free-text notes for the few people with a (synthetic) hereditary condition.
pub(crate) const HEREDITARY_NOTES: &[&str] = &[
    "家族性高血压史（模拟数据）",
    "地中海贫血基因携带（模拟数据）",
    "先天性耳聋家族史（模拟数据）",
    "红绿色盲家族史（模拟数据）",
    "多囊肾家族史（模拟数据）",
];

/// A code from a weighted list whose weights add up to 100.
pub(crate) fn weighted<R: Rng>(rng: &mut R, items: &[(&'static str, u32)]) -> &'static str {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for (code, weight) in items {
        if roll < *weight {
            return code;
        }
        roll -= weight;
    }
    items.first().map_or("01", |(code, _)| code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn lists_are_large_enough_and_distinct() {
        assert!(SURNAMES.len() >= 60);
        assert_eq!(
            SURNAMES.iter().collect::<HashSet<_>>().len(),
            SURNAMES.len()
        );
        // Four townships with up to 12 villages each must get distinct names.
        let names: HashSet<_> = VILLAGE_STEMS.iter().chain(COMMUNITY_STEMS).collect();
        assert!(names.len() >= 48);
        assert_eq!(names.len(), VILLAGE_STEMS.len() + COMMUNITY_STEMS.len());
        let birth = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap();
        for region in OUTSIDE_REGIONS {
            assert!(
                connectors::subject::IdNumber::build(region, birth, 1).is_ok(),
                "{region}"
            );
        }
    }
}
