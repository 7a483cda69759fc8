//! The coded values the departments' systems use: sex, hukou type, relation to the
//! head, registration status, marital status, insurance schemes and their status.
//!
//! Each enum maps to the code its standard (GB/T 2261, GB/T 4761, 人社 aae140…) gives it;
//! nothing here knows about the wire envelopes or the generated people.

use chrono::NaiveDate;

/// Sex, as GB/T 2261.1 codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    /// 男
    Male,
    /// 女
    Female,
}

impl Gender {
    /// "1" for male, "2" for female.
    pub fn code(self) -> &'static str {
        match self {
            Self::Male => "1",
            Self::Female => "2",
        }
    }
}

/// Kind of household registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HukouType {
    /// 非农业户口, code "10".
    NonAgricultural,
    /// 农业户口, code "20".
    Agricultural,
}

impl HukouType {
    /// The 户籍 system's code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NonAgricultural => "10",
            Self::Agricultural => "20",
        }
    }
}

/// Relation to the head of household, GB/T 4761 style codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    /// 户主 "02"
    Head,
    /// 夫 "11"
    Husband,
    /// 妻 "12"
    Wife,
    /// 子 "20"
    Son,
    /// 女 "30"
    Daughter,
    /// 父亲 "51"
    Father,
    /// 母亲 "52"
    Mother,
}

impl Relation {
    /// The two-digit code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Head => "02",
            Self::Husband => "11",
            Self::Wife => "12",
            Self::Son => "20",
            Self::Daughter => "30",
            Self::Father => "51",
            Self::Mother => "52",
        }
    }

    /// Whether this member is a child of the head.
    pub fn is_child(self) -> bool {
        matches!(self, Self::Son | Self::Daughter)
    }
}

/// Registration status, with the date it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResidentStatus {
    /// 正常 "0"
    Normal,
    /// 迁出 "1": moved the registration out of the county on that date.
    MovedOut(NaiveDate),
    /// 死亡注销 "2": deregistered as deceased on that date.
    Deceased(NaiveDate),
}

impl ResidentStatus {
    /// The 户籍 system's code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Normal => "0",
            Self::MovedOut(_) => "1",
            Self::Deceased(_) => "2",
        }
    }

    /// When the status changed, if it is not 正常.
    pub fn changed_on(self) -> Option<NaiveDate> {
        match self {
            Self::Normal => None,
            Self::MovedOut(date) | Self::Deceased(date) => Some(date),
        }
    }
}

/// Marital status, GB/T 2261.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaritalStatus {
    /// 未婚 "10"
    Unmarried,
    /// 已婚 "20"
    Married,
    /// 丧偶 "30"
    Widowed,
    /// 离婚 "40"
    Divorced,
}

impl MaritalStatus {
    /// The two-digit code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unmarried => "10",
            Self::Married => "20",
            Self::Widowed => "30",
            Self::Divorced => "40",
        }
    }
}

/// Social insurance schemes (险种, aae140).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// 110 企业职工基本养老保险
    EmployeePension,
    /// 170 城乡居民基本养老保险
    ResidentPension,
    /// 210 失业保险
    Unemployment,
    /// 310 职工基本医疗保险
    EmployeeMedical,
    /// 390 城乡居民基本医疗保险
    ResidentMedical,
    /// 410 工伤保险
    WorkInjury,
}

impl Scheme {
    /// The three-digit code.
    pub fn code(self) -> &'static str {
        match self {
            Self::EmployeePension => "110",
            Self::ResidentPension => "170",
            Self::Unemployment => "210",
            Self::EmployeeMedical => "310",
            Self::ResidentMedical => "390",
            Self::WorkInjury => "410",
        }
    }
}

/// Status of one scheme (aac008). Retirees keep their pension scheme with contributions
/// suspended ("2") while the pension is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InsuranceStatus {
    /// 参保缴费 "1"
    Paying,
    /// 暂停缴费 "2"
    Suspended,
    /// 终止参保 "3"
    Terminated,
}

impl InsuranceStatus {
    /// The one-digit code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Paying => "1",
            Self::Suspended => "2",
            Self::Terminated => "3",
        }
    }
}
