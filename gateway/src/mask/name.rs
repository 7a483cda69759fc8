//! The `name` mask: a person's name with only the surname (and, for three chars or
//! more, the last char) shown.

/// Two-char surnames that are kept whole: 欧阳娜娜 → 欧阳**.
const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "夏侯", "令狐", "端木", "独孤", "南宫", "西门", "太史", "申屠", "轩辕", "闻人", "澹台", "公冶",
    "赫连", "呼延", "钟离", "宗政", "濮阳", "淳于", "单于", "百里", "东郭", "万俟", "仲孙", "拓跋",
];

/// 张 → *, 张三 → 张*, 张小三 → 张*三, 欧阳娜娜 → 欧阳**. Never returns a non-empty
/// name unchanged (unless it is made of `*` already).
pub(super) fn mask_name(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    if n >= 3
        && let Some(surname) = COMPOUND_SURNAMES.iter().find(|c| s.starts_with(**c))
    {
        let kept = surname.chars().count();
        let mut out = String::from(*surname);
        out.extend(std::iter::repeat_n('*', n - kept));
        return out;
    }
    match chars.as_slice() {
        [] => String::new(),
        [_] => "*".to_owned(),
        [first, _] => format!("{first}*"),
        [first, .., last] => {
            let mut out = String::new();
            out.push(*first);
            out.extend(std::iter::repeat_n('*', n - 2));
            out.push(*last);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mask_name;

    #[test]
    fn plain_names() {
        assert_eq!(mask_name(""), "");
        assert_eq!(mask_name("张"), "*");
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("张小三"), "张*三");
        assert_eq!(mask_name("阿卜杜·热合曼"), "阿*****曼");
        assert_eq!(mask_name("Li Lei"), "L****i");
    }

    #[test]
    fn compound_surnames_keep_the_surname() {
        assert_eq!(mask_name("欧阳娜娜"), "欧阳**");
        assert_eq!(mask_name("司马光"), "司马*");
        assert_eq!(mask_name("诸葛孔明"), "诸葛**");
        assert_eq!(mask_name("西门吹雪"), "西门**");
        // A bare compound surname is masked like any two-char name.
        assert_eq!(mask_name("欧阳"), "欧*");
    }

    #[test]
    fn every_listed_surname_is_two_chars() {
        for s in super::COMPOUND_SURNAMES {
            assert_eq!(s.chars().count(), 2, "{s}");
        }
    }
}
